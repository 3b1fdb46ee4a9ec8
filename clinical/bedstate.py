"""Per-bed state: latest valid value per parameter, minute windows, patient context.

One :class:`BedState` per bed, updated once per Sample in O(1) with no
allocation beyond float boxing: values live in preallocated lists indexed by
parameter slot. Samples carrying any quality flag (or NaN) never update a
value that feeds a score; they only record that the parameter was seen
invalid (for the technical alarms).

The anomaly model's window of minute buckets is the streaming form of the one
feature spec in clinical/features.py (:class:`~clinical.features.MinuteWindow`,
this class's base); training computes the same buckets with its vectorised form.

Times: every method takes ``now`` (monotonic seconds, or the recorded time in
a replay); nothing here reads a clock.
"""

from __future__ import annotations

import math

import numpy as np

from clinical.features import FALLBACK_AFTER_S, MODEL_PARAMS, SPEC, MinuteWindow
from clinical.model_input import Baseline
from clinical.sample import Quality, Sample
from clinical.trend_history import MinuteHistory

# parameter slots tracked for scoring; pulse_rate backs heart_rate when no ECG
SLOTS: tuple[str, ...] = ("heart_rate", "pulse_rate", "spo2", "resp_rate", "nibp_sys", "nibp_dia", "temperature")
SLOT: dict[str, int] = {p: i for i, p in enumerate(SLOTS)}
HR, PR, SPO2, RESP, SYS, DIA, TEMP = range(len(SLOTS))

# the anomaly model's input channels, from the one feature spec
MODEL_SLOTS: tuple[int, ...] = tuple(SLOT[p] for p in MODEL_PARAMS)
AGE_INTERVALS = 2.5  # a value stays fresh for at least this many of its slot's sampling intervals (age_limit)
_VALID = Quality.VALID  # an enum member read from its class costs ~0.1 us (Python 3.11): bound once per module


class PatientContext:
    """What NEWS2 needs beyond the monitor: oxygen, SpO2 scale 2, consciousness (ACVPU)."""

    __slots__ = ("consciousness", "on_oxygen", "scale2")

    def __init__(self, on_oxygen: bool = False, scale2: bool = False, consciousness: str = "A") -> None:
        self.on_oxygen = on_oxygen
        self.scale2 = scale2
        self.consciousness = consciousness


class BedState(MinuteWindow):
    __slots__ = (
        "baseline",
        "bed",
        "context",
        "dirty",
        "history",
        "iv",
        "last_any",
        "last_quality",
        "last_seen",
        "news2",
        "patient",
        "prev_value",
        "profile",
        "t_valid",
        "t_wall",
        "value",
    )

    def __init__(self, bed: str, profile: str = "default", patient: str = "", context: PatientContext | None = None):
        n = len(SLOTS)
        self.bed = bed
        self.profile = profile
        self.patient = patient
        self.context = context or PatientContext()
        self.value: list[float] = [math.nan] * n  # latest valid value
        self.prev_value: list[float] = [math.nan] * n  # value one minute before (trend arrows)
        self.t_valid: list[float] = [-math.inf] * n  # when the latest valid value arrived
        self.t_wall: list[float] = [0.0] * n
        self.last_seen: list[float] = [-math.inf] * n  # any sample, valid or not
        self.iv: list[float] = [math.nan] * n  # sampling interval per slot (s), every row counted (see age_limit)
        self.last_quality: list[int] = [0] * n
        self.last_any = -math.inf
        self.dirty = False  # a value changed since NEWS2 was last computed
        self.news2: object = None  # clinical.news2.News2 of the latest computation
        self.history = MinuteHistory()  # the nurse page's bed trends (one row per closed minute)
        self.baseline = Baseline()  # the patient's own baseline for the model input (clinical/model_input.py)
        super().__init__()

    # -- hot path ----------------------------------------------------------------------------------
    def update(self, s: Sample) -> int:
        """Apply one sample; returns the slot it updated with a valid value, or -1."""
        i = SLOT.get(s.parameter, -1)
        if i < 0:
            return -1
        t = s.recv_mono
        dt = t - self.last_seen[i]
        if 0.0 < dt <= 300.0:  # a gap moves the estimate by at most a fifth per row
            iv = self.iv[i]
            self.iv[i] = dt if iv != iv else iv + 0.2 * ((dt if dt < 2.0 * iv else 2.0 * iv) - iv)
        self.last_seen[i] = t
        self.last_any = t
        q = s.quality
        self.last_quality[i] = 0 if q == _VALID else int(q)  # int() of a flag costs ~0.1 us: not for the valid ones
        if q != _VALID or s.value != s.value:  # NaN check without a call
            return -1
        if t >= self._bucket_end or self._bucket_end != self._bucket_end:
            self.roll(t)
        v = s.value
        if i == PR:
            # pulse oximeter rate stands in for ECG heart rate in the model when no ECG is present
            j = _HR_CHANNEL if t - self.t_valid[HR] > FALLBACK_AFTER_S else -1
        else:
            j = _MODEL_INDEX[i]
        self.value[i] = v
        self.t_valid[i] = t
        self.t_wall[i] = s.recv_wall
        self.dirty = True
        if j >= 0:  # self._bucket_add(j, v), inlined (every valid sample)
            self._bucket_sum[j] += v
            self._bucket_cnt[j] += 1
        return i

    def age_limit(self, i: int, max_age: float) -> float:
        """``max_age`` in seconds, or 2.5 sampling intervals of slot ``i`` if longer: a value exported once a
        minute is as fresh 90 s later as a 1 Hz one is after 30 s (ages are stated in recorded time)."""
        a = AGE_INTERVALS * self.iv[i]
        return a if a > max_age else max_age

    def fresh(self, i: int, now: float, max_age: float) -> float:
        """The latest valid value of slot ``i`` if younger than ``max_age`` seconds, else NaN."""
        return self.value[i] if now - self.t_valid[i] <= self.age_limit(i, max_age) else math.nan

    def heart_rate(self, now: float, max_age: float) -> float:
        v = self.fresh(HR, now, max_age)
        return v if v == v else self.fresh(PR, now, max_age)

    def _leaving(self, row: np.ndarray) -> None:
        self.baseline.leave(row)

    def _closed(self) -> None:
        for i in range(len(SLOTS)):
            self.prev_value[i] = self.value[i]
        end = self._bucket_end  # the bucket that just closed; a channel with data in it has _carry_t == end
        means = tuple(self._carry[j] if self._carry_t[j] == end else math.nan for j in range(len(MODEL_PARAMS)))
        if any(v == v for v in means):
            self.history.close(end, means, getattr(self.news2, "total", None))


_MODEL_INDEX: tuple[int, ...] = tuple(MODEL_SLOTS.index(i) if i in MODEL_SLOTS else -1 for i in range(len(SLOTS)))
_HR_CHANNEL = MODEL_PARAMS.index("heart_rate")
if SPEC.fallback != (("heart_rate", "pulse_rate"),):  # update() implements exactly this fallback
    raise ImportError(f"clinical.bedstate implements no fallback {SPEC.fallback}")


def trend(state: BedState, i: int) -> int:
    """+1 rising, -1 falling, 0 steady against the value one bucket ago (5 % band)."""
    v, p = state.value[i], state.prev_value[i]
    if v != v or p != p or p == 0:
        return 0
    r = (v - p) / abs(p)
    return 1 if r > 0.05 else -1 if r < -0.05 else 0
