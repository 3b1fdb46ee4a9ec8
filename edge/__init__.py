"""The gateway daemon: wiring sources -> pipeline -> clinical core -> local delivery (local MQTT alarm
bus, nurse page); summaries, pseudonyms, the durable outbox and uplink; model slots; the endoscopy room.

May import: ``wire``, ``runtime``, ``clinical``, ``firmware_bridge``. Never ``cloud``, ``pulsegate`` or
``bench``.
"""
