"""Device protocols: sans-IO codecs, async serial/MLLP/MQTT transports, device emulators.

May import: ``wire``, ``runtime``, ``clinical`` (Sample, DeviceEvent, the parameter registry).
"""
