"""The cloud daemon: ingest workers, the InfluxDB store, the REST API and dashboard, training and the
model registry.

May import: ``wire``, ``runtime``, ``clinical`` (training and evaluation run the clinical core
in-process). Never ``edge``, ``firmware_bridge``, ``pulsegate`` or ``bench``.
"""
