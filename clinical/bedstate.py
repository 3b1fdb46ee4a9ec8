"""Per-bed state: latest valid value per parameter, minute windows, patient context.

One :class:`BedState` per bed, updated once per Sample in O(1) with no
allocation beyond float boxing: values live in preallocated lists indexed by
parameter slot. Samples carrying any quality flag (or NaN) never update a
value that feeds a score; they only record that the parameter was seen
invalid (for the technical alarms).

The anomaly model sees a window of per-minute buckets of the five model
parameters (:data:`MODEL_PARAMS`). A bucket's value is the mean of the valid
samples inside it; an empty bucket carries the previous bucket's value forward
while the last valid reading is younger than the parameter's ``carry_s``
(continuous numerics 2 min, NIBP 1 h, temperature 4 h), else it is missing.
cloud/training/features.py computes exactly the same buckets with numpy
(tests/test_bedstate_windows.py checks both agree), so the model is served
the features it was trained on.

Times: every method takes ``now`` (monotonic seconds, or the recorded time in
a replay); nothing here reads a clock.
"""

from __future__ import annotations

import math

import numpy as np

from clinical.sample import Quality, Sample

# parameter slots tracked for scoring; pulse_rate backs heart_rate when no ECG
SLOTS: tuple[str, ...] = ("heart_rate", "pulse_rate", "spo2", "resp_rate", "nibp_sys", "nibp_dia", "temperature")
SLOT: dict[str, int] = {p: i for i, p in enumerate(SLOTS)}
HR, PR, SPO2, RESP, SYS, DIA, TEMP = range(len(SLOTS))

# the anomaly model's input channels (values then a 0/1 availability mask per channel)
MODEL_PARAMS: tuple[str, ...] = ("heart_rate", "spo2", "resp_rate", "nibp_sys", "temperature")
MODEL_SLOTS: tuple[int, ...] = tuple(SLOT[p] for p in MODEL_PARAMS)
CARRY_S: tuple[float, ...] = (120.0, 120.0, 120.0, 3600.0, 4 * 3600.0)
# normalisation (centre, spread) per model channel; the model sees (x - c) / s
NORM: tuple[tuple[float, float], ...] = ((80.0, 20.0), (95.0, 5.0), (16.0, 6.0), (120.0, 25.0), (37.0, 1.0))
BUCKET_S = 60.0
WINDOW = 60  # buckets: one hour of history
N_FEATURES = 2 * len(MODEL_PARAMS)


class PatientContext:
    """What NEWS2 needs beyond the monitor: oxygen, SpO2 scale 2, consciousness (ACVPU)."""

    __slots__ = ("consciousness", "on_oxygen", "scale2")

    def __init__(self, on_oxygen: bool = False, scale2: bool = False, consciousness: str = "A") -> None:
        self.on_oxygen = on_oxygen
        self.scale2 = scale2
        self.consciousness = consciousness


class BedState:
    __slots__ = (
        "_bucket_cnt",
        "_bucket_end",
        "_bucket_sum",
        "_carry",
        "_carry_t",
        "_ring",
        "_ring_pos",
        "bed",
        "buckets_filled",
        "context",
        "dirty",
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
        "window_ready",
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
        self.last_quality: list[int] = [0] * n
        self.last_any = -math.inf
        self.dirty = False  # a value changed since NEWS2 was last computed
        self.news2: object = None  # clinical.news2.News2 of the latest computation
        m = len(MODEL_PARAMS)
        self._bucket_sum = [0.0] * m
        self._bucket_cnt = [0] * m
        self._bucket_end = math.nan
        self._carry: list[float] = [math.nan] * m
        self._carry_t: list[float] = [-math.inf] * m
        self._ring = np.zeros((WINDOW, N_FEATURES), np.float32)
        self._ring_pos = 0
        self.buckets_filled = 0
        self.window_ready = False  # a new bucket closed since the model last scored this bed

    # -- hot path ----------------------------------------------------------------------------------
    def update(self, s: Sample) -> int:
        """Apply one sample; returns the slot it updated with a valid value, or -1."""
        i = SLOT.get(s.parameter, -1)
        if i < 0:
            return -1
        t = s.recv_mono
        self.last_seen[i] = t
        self.last_any = t
        self.last_quality[i] = int(s.quality)
        if s.quality != Quality.VALID or s.value != s.value:  # NaN check without a call
            return -1
        if t >= self._bucket_end or self._bucket_end != self._bucket_end:
            self.roll(t)
        self.value[i] = s.value
        self.t_valid[i] = t
        self.t_wall[i] = s.recv_wall
        self.dirty = True
        if i == PR:
            # pulse oximeter rate stands in for ECG heart rate in the model when no ECG is present
            if t - self.t_valid[HR] > 10.0:
                self._bucket_add(0, s.value)
        else:
            j = _MODEL_INDEX[i]
            if j >= 0:
                self._bucket_add(j, s.value)
        return i

    def _bucket_add(self, j: int, v: float) -> None:
        self._bucket_sum[j] += v
        self._bucket_cnt[j] += 1

    def fresh(self, i: int, now: float, max_age: float) -> float:
        """The latest valid value of slot ``i`` if younger than ``max_age`` seconds, else NaN."""
        return self.value[i] if now - self.t_valid[i] <= max_age else math.nan

    def heart_rate(self, now: float, max_age: float) -> float:
        v = self.fresh(HR, now, max_age)
        return v if v == v else self.fresh(PR, now, max_age)

    # -- minute buckets -----------------------------------------------------------------------------
    def roll(self, now: float) -> None:
        """Close every bucket that ended at or before ``now`` (called per sample and from tick)."""
        if self._bucket_end != self._bucket_end:  # first sample: align buckets to the minute
            self._bucket_end = (math.floor(now / BUCKET_S) + 1) * BUCKET_S
            return
        if now < self._bucket_end:
            return
        k = math.floor((now - self._bucket_end) / BUCKET_S) + 1  # buckets that ended
        self._close_bucket()  # the only one that can hold samples
        k -= 1
        if k > WINDOW:  # long gap: the oldest empty buckets would scroll out of the window anyway
            self._bucket_end += (k - WINDOW) * BUCKET_S
            self.buckets_filled += k - WINDOW
            k = WINDOW
        for _ in range(k):
            self._close_bucket()

    def _close_bucket(self) -> None:
        end = self._bucket_end
        row = self._ring[self._ring_pos]
        m = len(MODEL_PARAMS)
        for j in range(m):
            c = self._bucket_cnt[j]
            if c:
                v = self._bucket_sum[j] / c
                self._carry[j] = v
                self._carry_t[j] = end
            elif end - self._carry_t[j] <= CARRY_S[j]:
                v = self._carry[j]
            else:
                v = math.nan
            if v == v:
                centre, spread = NORM[j]
                row[j] = (v - centre) / spread
                row[m + j] = 1.0
            else:
                row[j] = 0.0
                row[m + j] = 0.0
            self._bucket_sum[j] = 0.0
            self._bucket_cnt[j] = 0
        for i in range(len(SLOTS)):
            self.prev_value[i] = self.value[i]
        self._ring_pos = (self._ring_pos + 1) % WINDOW
        self._bucket_end = end + BUCKET_S
        self.buckets_filled += 1
        self.window_ready = True

    def window(self, out: np.ndarray) -> None:
        """Copy the last WINDOW buckets, oldest first, into ``out`` (shape (WINDOW, N_FEATURES))."""
        p = self._ring_pos
        out[: WINDOW - p] = self._ring[p:]
        out[WINDOW - p :] = self._ring[:p]


_MODEL_INDEX: tuple[int, ...] = tuple(MODEL_SLOTS.index(i) if i in MODEL_SLOTS else -1 for i in range(len(SLOTS)))


def trend(state: BedState, i: int) -> int:
    """+1 rising, -1 falling, 0 steady against the value one bucket ago (5 % band)."""
    v, p = state.value[i], state.prev_value[i]
    if v != v or p != p or p == 0:
        return 0
    r = (v - p) / abs(p)
    return 1 if r > 0.05 else -1 if r < -0.05 else 0
