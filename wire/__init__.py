"""The edge-cloud contract: topics, message schemas, encoding and versions.

Imported by both daemons (edge/ and cloud/); nothing here imports either of them.
"""

from wire.sample import PARAMETERS, DeviceEvent, Parameter, Quality, Sample

WIRE_VERSION = 1

__all__ = ["PARAMETERS", "WIRE_VERSION", "DeviceEvent", "Parameter", "Quality", "Sample"]
