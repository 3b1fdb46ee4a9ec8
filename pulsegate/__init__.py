"""PulseGate's top layer: the ``pulsegate`` console script, one module per command group, and the demo.

It may import every other package (wire, runtime, clinical, firmware_bridge, edge, cloud, bench);
nothing imports it.
"""

from runtime.version import __version__

__all__ = ["__version__"]
