"""PulseGate: edge-cloud daemon for clinical IoT (shared runtime and CLI)."""

__version__ = "0.1.0"
