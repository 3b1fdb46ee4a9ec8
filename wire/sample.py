"""Sample: one normalised reading from a device, and the parameter registry.

A Sample is created once per decoded device value on the hot path, so it is a
slots dataclass (no per-instance dict) and is not validated again after the codec.

Parameters are keyed by a short name; each carries its IEEE 11073-10101 (MDC)
code, its UCUM unit and its LOINC code (../shared/REFERENCES.md, "HL7 v2" and
"FHIR R4 vital signs"). MDC code = partition x 65536 + term code.
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


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    mdc: int
    mdc_ref: str
    unit: str  # UCUM
    loinc: str


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter("heart_rate", 147842, "MDC_ECG_HEART_RATE", "/min", "8867-4"),
        Parameter("pulse_rate", 149530, "MDC_PULS_OXIM_PULS_RATE", "/min", "8867-4"),
        Parameter("spo2", 150456, "MDC_PULS_OXIM_SAT_O2", "%", "59408-5"),
        Parameter("resp_rate", 151562, "MDC_RESP_RATE", "/min", "9279-1"),
        Parameter("nibp_sys", 150021, "MDC_PRESS_BLD_NONINV_SYS", "mm[Hg]", "8480-6"),
        Parameter("nibp_dia", 150022, "MDC_PRESS_BLD_NONINV_DIA", "mm[Hg]", "8462-4"),
        Parameter("nibp_mean", 150023, "MDC_PRESS_BLD_NONINV_MEAN", "mm[Hg]", "8478-0"),
        Parameter("temperature", 150364, "MDC_TEMP_BODY", "Cel", "8310-5"),
        Parameter("perfusion_index", 150488, "MDC_PULS_OXIM_PERF_REL", "%", "61006-3"),
        Parameter("rr_interval", 147240, "MDC_ECG_TIME_PD_RR_GL", "s", "8637-1"),
    )
}
PARAMETERS_BY_MDC: dict[int, Parameter] = {}
for _p in PARAMETERS.values():
    PARAMETERS_BY_MDC.setdefault(_p.mdc, _p)


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
