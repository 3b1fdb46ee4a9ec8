"""Gateway daemon: sources -> pipeline -> alarms; uplink; model slots; nurse page."""
