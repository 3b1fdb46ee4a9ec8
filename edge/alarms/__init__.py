"""Alarm types, the alarm manager, alarm profiles (config) and local delivery."""
