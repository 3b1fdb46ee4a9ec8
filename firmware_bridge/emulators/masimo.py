"""Masimo Rad-8 emulator: one ASCII 1 line a second, byte-exact (see firmware_bridge.masimo)."""

from __future__ import annotations

from firmware_bridge.emulators.scenarios import Scenario
from firmware_bridge.masimo import EXC_INTERFERENCE, EXC_SENSOR_OFF, EXC_SET_MODE, format_line


class MasimoEmulator:
    """Prints what a Rad-8 in ASCII 1 mode prints; probe off -> dashes and EXC sensor-off bit."""

    period_s = 1.0

    def __init__(self, scenario: Scenario, serial: int = 56661) -> None:
        self.scenario = scenario
        self.serial = serial

    def produce(self, t: float, wall: float) -> bytes:
        s = self.scenario.at(t)
        if s.probe_off:
            return format_line(wall, None, None, None, EXC_SET_MODE | EXC_SENSOR_OFF, self.serial)
        exc = EXC_SET_MODE | (EXC_INTERFERENCE if s.artifact else 0)
        return format_line(wall, s.spo2, s.hr, s.pi, exc, self.serial)

    def receive(self, data: bytes, t: float, wall: float) -> bytes:
        return b""  # the Rad-8 serial port is output-only

    def reset(self) -> None:
        pass
