"""NEWS2 (Royal College of Physicians, 2017): Chart 1 scoring and Chart 4 responses.

Every band below is copied from Chart 1 (see ../shared/REFERENCES.md) and is
tested at each edge in tests/test_news2.py.

Values from continuous monitors are averages and may be fractional; the chart
is written for charted whole numbers, so respiration rate, SpO2, systolic
pressure and pulse are rounded half-up to an integer and temperature to one
decimal before banding (20.4 /min scores as 20, 20.5 as 21).

A parameter that is missing (None) scores nothing and is listed in
``missing``: the total is then a lower bound of the full score (no parameter
scores below 0), so a trigger raised on a partial score is still correct.
Consciousness defaults to alert and the patient to breathing air when the
caller does not know better (the bed's patient context).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

ACVPU = ("A", "C", "V", "P", "U")


class Response(enum.IntEnum):
    """Chart 4 clinical risk / response, ordered by urgency."""

    ROUTINE = 0  # total 0: minimum 12-hourly observations
    LOW = 1  # total 1-4: registered nurse assessment, 4-6-hourly
    LOW_MEDIUM = 2  # 3 in any single parameter: urgent ward-based review, hourly
    MEDIUM = 3  # total 5-6: urgent response threshold, hourly
    HIGH = 4  # total >= 7: emergency response, continuous monitoring


def _int(x: float) -> int:
    return math.floor(x + 0.5)


def score_resp_rate(rr: float) -> int:
    v = _int(rr)
    if v <= 8:
        return 3
    if v <= 11:
        return 1
    if v <= 20:
        return 0
    if v <= 24:
        return 2
    return 3


def score_spo2(spo2: float, scale2: bool = False, on_oxygen: bool = False) -> int:
    """SpO2 scale 1, or scale 2 for a prescribed 88-92 % target (hypercapnic failure)."""
    v = _int(spo2)
    if not scale2:
        if v <= 91:
            return 3
        if v <= 93:
            return 2
        if v <= 95:
            return 1
        return 0
    if v <= 83:
        return 3
    if v <= 85:
        return 2
    if v <= 87:
        return 1
    if v <= 92 or not on_oxygen:
        return 0  # 88-92, or >= 93 on air
    if v <= 94:
        return 1
    if v <= 96:
        return 2
    return 3


def score_air_oxygen(on_oxygen: bool) -> int:
    return 2 if on_oxygen else 0


def score_systolic(sbp: float) -> int:
    v = _int(sbp)
    if v <= 90:
        return 3
    if v <= 100:
        return 2
    if v <= 110:
        return 1
    if v <= 219:
        return 0
    return 3


def score_pulse(hr: float) -> int:
    v = _int(hr)
    if v <= 40:
        return 3
    if v <= 50:
        return 1
    if v <= 90:
        return 0
    if v <= 110:
        return 1
    if v <= 130:
        return 2
    return 3


def score_consciousness(level: str) -> int:
    """A scores 0; new confusion (C), V, P or U score 3."""
    if level not in ACVPU:
        raise ValueError(f"consciousness must be one of {ACVPU}, got {level!r}")
    return 0 if level == "A" else 3


def score_temperature(temp_c: float) -> int:
    tenths = _int(temp_c * 10.0)
    if tenths <= 350:
        return 3
    if tenths <= 360:
        return 1
    if tenths <= 380:
        return 0
    if tenths <= 390:
        return 1
    return 2


@dataclass(frozen=True, slots=True)
class News2:
    total: int
    subscores: dict[str, int]
    missing: tuple[str, ...]
    response: Response

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def single_parameter_3(self) -> bool:
        return 3 in self.subscores.values()


def response_for(total: int, any_three: bool) -> Response:
    """Chart 4: >= 7 high, 5-6 medium, a single 3 low-medium, 1-4 low, 0 routine."""
    if total >= 7:
        return Response.HIGH
    if total >= 5:
        return Response.MEDIUM
    if any_three:
        return Response.LOW_MEDIUM
    if total >= 1:
        return Response.LOW
    return Response.ROUTINE


def news2(
    *,
    resp_rate: float | None,
    spo2: float | None,
    systolic: float | None,
    pulse: float | None,
    temperature: float | None,
    on_oxygen: bool = False,
    consciousness: str = "A",
    scale2: bool = False,
) -> News2:
    """Aggregate NEWS2 from the latest valid values (None = no valid value)."""
    sub: dict[str, int] = {}
    missing: list[str] = []

    def put(name: str, value: float | None, fn: object) -> None:
        if value is None or math.isnan(value):
            missing.append(name)
        else:
            sub[name] = fn(value)  # type: ignore[operator]

    put("resp_rate", resp_rate, score_resp_rate)
    if spo2 is None or math.isnan(spo2):
        missing.append("spo2")
    else:
        sub["spo2"] = score_spo2(spo2, scale2, on_oxygen)
    sub["air_oxygen"] = score_air_oxygen(on_oxygen)
    put("systolic", systolic, score_systolic)
    put("pulse", pulse, score_pulse)
    sub["consciousness"] = score_consciousness(consciousness)
    put("temperature", temperature, score_temperature)
    total = sum(sub.values())
    return News2(total, sub, tuple(missing), response_for(total, 3 in sub.values()))
