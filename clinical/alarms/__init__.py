"""Alarm rules and the alarm manager's state machine (priorities, delays, latching, acknowledgement)."""
