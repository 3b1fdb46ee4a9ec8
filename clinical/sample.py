"""Sample and DeviceEvent: the in-process readings and technical conditions every source produces.

A Sample is created once per decoded device value on the hot path, so it is a
slots dataclass (no per-instance dict) and is not validated again after the codec.

The parameter registry (MDC, UCUM, LOINC codes) is clinical/parameters.py.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Quality(enum.IntFlag):
    """Quality flags of a sample; no flag set means valid.

    Mirrors the IntelliVue MeasurementState bits and the Masimo/Nonin status
    bits: anything but VALID must never feed a clinical score.
    """

    VALID = 0
    QUESTIONABLE = 1
    UNAVAILABLE = 2
    SENSOR_OFF = 4
    ARTIFACT = 8
    CALIBRATING = 16
    DEMO = 32
    TEST = 64


@dataclass(slots=True)
class Sample:
    """One reading. ``value`` is NaN when the device reported no number.

    ``device_time`` is the device's own clock (epoch seconds) when it sends one;
    ``recv_mono``/``recv_wall`` are taken once, where the bytes arrived, and
    never rewritten.
    """

    bed: str
    parameter: str
    value: float
    unit: str
    recv_mono: float
    recv_wall: float
    quality: Quality = Quality.VALID
    device: str = ""
    device_time: float | None = None
    patient: str = ""
    mdc: int = 0

    @property
    def valid(self) -> bool:
        return self.quality == Quality.VALID and not math.isnan(self.value)


@dataclass(slots=True)
class DeviceEvent:
    """A technical condition of a device or link, raised by a transport or codec.

    ``condition`` is one of: connected, disconnected, silent, sensor_off,
    probe_fault, low_signal, and ``active`` says whether it starts or ends.
    These feed technical alarms, never a clinical score.
    """

    bed: str
    device: str
    condition: str
    active: bool
    recv_mono: float
    recv_wall: float
    parameter: str = ""
    detail: str = ""
