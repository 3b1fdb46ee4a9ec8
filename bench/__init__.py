"""Benchmarks that print figures, their drivers, and the local services (mosquitto, influxd) that
benchmarks, tests and the demo start on free ports.

Not part of any daemon: nothing in wire, runtime, clinical, firmware_bridge, edge or cloud imports it.
``pulsegate bench ...`` (pulsegate/commands/bench.py) and the tests do.
"""
