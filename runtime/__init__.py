"""What every PulseGate daemon shares: the supervisor, sd_notify, JSON logs, Prometheus metrics,
config loading (TOML -> frozen pydantic models, errors with key and line), the HTTP server base and
the daemon entry point.

May import: ``wire`` only. Imported by everything above it (clinical, firmware_bridge, edge, cloud,
pulsegate, bench).
"""
