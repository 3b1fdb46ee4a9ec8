"""The edge-cloud contract: topics, message schemas, encoding and versions.

Imported by both daemons (edge/ and cloud/); nothing here imports either of them.
"""

from wire.sample import PARAMETERS, DeviceEvent, Parameter, Quality, Sample

WIRE_VERSION = 2  # = wire.messages.VERSION; v2 peers also accept v1 (wire.messages.SUPPORTED)

__all__ = ["PARAMETERS", "WIRE_VERSION", "DeviceEvent", "Parameter", "Quality", "Sample"]
