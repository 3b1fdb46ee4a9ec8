"""The release version every daemon reports (status messages, /metrics, ``pulsegate --version``)."""

__version__ = "0.1.0"
