"""Nonin OEM III emulator: 75 frames/s in 25-frame packets, byte-exact (see firmware_bridge.nonin)."""

from __future__ import annotations

import math

from firmware_bridge.emulators.scenarios import Scenario
from firmware_bridge.nonin import (
    MISSING_HR,
    MISSING_SPO2,
    PACKET_FRAMES,
    ST_ARTF,
    ST_GPRF,
    ST_OOT,
    ST_SNSD,
    packet,
)

FRAME_RATE = 75.0


class NoninEmulator:
    """One packet every 1/3 s with a plethysmogram following the scenario's pulse rate."""

    period_s = PACKET_FRAMES / FRAME_RATE

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    def produce(self, t: float, wall: float) -> bytes:
        s = self.scenario.at(t)
        if s.probe_off:
            return packet(MISSING_HR, MISSING_SPO2, ST_SNSD | ST_OOT, [0] * PACKET_FRAMES)
        pleth = []
        for i in range(PACKET_FRAMES):
            phase = ((t + i / FRAME_RATE) * s.hr / 60.0) % 1.0
            pleth.append(int(128 + 90 * math.exp(-((phase - 0.25) ** 2) / 0.02) - 40 * phase))
        status = ST_GPRF | (ST_ARTF if s.artifact else 0)
        return packet(round(s.hr), round(s.spo2), status, pleth)

    def receive(self, data: bytes, t: float, wall: float) -> bytes:
        return b""

    def reset(self) -> None:
        pass
