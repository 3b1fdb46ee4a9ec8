"""The pure clinical core, shared by the gateway, replay, training and evaluation.

Holds: parameters and units, the in-process Sample and DeviceEvent types, per-bed state, the anomaly
model's feature spec (one definition, streaming and vectorised forms), NEWS2, alarm rules and the alarm
manager's state machine, the ClinicalStage that ties them together, replay of recorded CSVs, the LiteRT
model runner and the endoscopy model's pre/post-processing and evaluation.

No asyncio, no sockets, no clocks (every method takes ``now``), no files except the model and
replay inputs a caller names. May import: ``wire``, ``runtime``.
"""
