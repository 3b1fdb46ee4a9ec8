"""Deterioration trend against the patient's own baseline: the early warning.

Every minute the bed's policy hands in the minute means of clean heart rate, respiration rate and
SpO2 and the latest NIBP systolic and temperature readings. Per parameter:

- level: the median of the last ``slow_min`` minute means for heart rate and resp, of the last
  ``fast_min`` for SpO2; heart rate and resp changing alone (activity, a walk to the toilet, pain:
  minutes; a deterioration persists) are judged on ``long_min`` (30-minute) medians; for NIBP
  the less alarming of the last two readings within 2 h (one cuff error does not move it), for
  temperature the last reading within 6 h;
- baseline: the median of the first ``baseline_min`` minute means (first readings for NIBP and
  temperature), then a slow moving average (time constant ``adapt_min``) that only follows the
  patient while that parameter is not deviating: an athlete's 45 /min and a chronic 115 /min are
  their own normal;
- deviation z = (level - baseline) / scale in the direction of harm, minus a dead band, and
  counted only as far as the value is also near or beyond the normal band (``min(z, a + 1)``,
  a = how far beyond the band): an athlete whose HR rises from 45 to 65 is not deteriorating.

Score S = sum of deviations when at least two parameters deviate (corroboration) and the parameters
activity does not move (SpO2, NIBP, temperature) deviate by ``unlock`` together; that sum counts
``corroborated_gain`` times in the CUSUM (evidence activity cannot fake needs the least time). Heart rate and resp
alone count on their 30-minute medians, at most ``rate_only_cap`` a minute and each only as far as it is
beyond the normal band (``rate_only_gate`` scale units inside it, default 0), unless both have stayed at
least ``sustained_dev`` off on their 10-minute medians for ``sustained_min`` consecutive minutes: longer
than an activity bout at that height lasts, so the deviations count in full. Else only what a single
parameter shows beyond ``single_margin`` (heart rate and resp there too on their gated 30-minute
medians). A CUSUM C = max(0, C + S - k) per minute raises the condition when it reaches h: a large,
corroborated change alarms within minutes, a small one only if it persists (a severity-scaled delay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

T_HR, T_RR, T_SPO2, T_SYS, T_TEMP = range(5)
NAMES = ("HR", "resp", "SpO2", "NIBP sys", "temp")


@dataclass(frozen=True, slots=True)
class TrendSettings:
    scale: tuple[float, float, float, float, float] = (10.0, 3.0, 2.0, 15.0, 0.5)
    gate: tuple[float, float, float, float, float] = (1.0, 1.0, 1.0, 1.0, 0.5)  # how far inside the band still counts
    dead_band: float = 0.5
    slow_min: int = 10
    fast_min: int = 5
    long_min: int = 30  # heart rate and resp alone are judged on 30-minute medians (activity lasts minutes)
    baseline_min: int = 15
    adapt_min: float = 240.0
    k: float = 1.0
    h: float = 12.0
    single_margin: float = 1.5
    cap: float = 3.0
    rate_only_cap: float = 1.8  # heart rate and resp alone (30-min medians) add at most cap - k a minute
    rate_only_gate: float = 0.0  # ... and count only as far as they are beyond the normal band (HR 85, resp 18)
    unlock: float = 0.75  # SpO2, NIBP or temperature deviating at least this much: not just activity
    corroborated_gain: float = 1.3  # the unlocked sum counts this many times (evidence activity cannot fake)
    sustained_min: int = 15  # HR and resp both off this long on 10-min medians: longer than an activity bout
    sustained_dev: float = 1.0  # ... by at least this much each (HR +15 /min, resp +4.5 /min beyond own)


def _median(xs: list[float]) -> float:
    s = sorted(x for x in xs if x == x)
    n = len(s)
    if n == 0:
        return math.nan
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


class TrendDetector:
    __slots__ = ("_init", "_nibp", "_temp", "base", "contrib", "cusum", "level", "minutes", "path", "scale2",
                 "score", "settings", "slow", "sustained")

    def __init__(self, settings: TrendSettings | None = None, scale2: bool = False) -> None:
        self.settings = settings or TrendSettings()
        self.scale2 = scale2
        n = max(self.settings.slow_min, self.settings.fast_min, self.settings.long_min)
        self.minutes: list[list[float]] = [[math.nan] * n for _ in range(3)]  # ring per continuous parameter
        self._init: list[list[float]] = [[], [], [], [], []]  # values for the initial baseline
        self.base = [math.nan] * 5
        self.level = [math.nan] * 5
        self.contrib = [0.0] * 5
        self.slow = [0.0, 0.0]  # HR and resp deviations on the 30-minute medians
        self._nibp: list[tuple[float, float]] = []  # (t, systolic) of the last two readings
        self._temp = (-math.inf, math.nan)
        self.cusum = 0.0
        self.score = 0.0
        self.sustained = 0  # consecutive minutes with HR and resp both >= sustained_dev on 10-min medians
        self.path = ""  # which rule made the last score: corroborated, sustained, rate_only, single

    def robust_sys(self, t: float, max_age: float = 3600.0) -> float:
        """The less alarming of the last two NIBP systolic readings (one cuff error does not count), NaN if none."""
        recent = [s for tt, s in self._nibp if t - tt <= 2 * max_age]
        if not recent or t - self._nibp[-1][0] > max_age:
            return math.nan
        return max(recent)

    def nibp(self, t: float, sys: float) -> None:
        dt = t - self._nibp[-1][0] if self._nibp else math.inf
        self._nibp = [*self._nibp[-1:], (t, sys)]
        self._baseline_reading(T_SYS, sys, dt)

    def temperature(self, t: float, v: float) -> None:
        dt = t - self._temp[0]
        self._temp = (t, v)
        self._baseline_reading(T_TEMP, v, dt)

    def _baseline_reading(self, j: int, v: float, dt: float) -> None:
        b = self.base[j]
        if b == b:  # follow the patient slowly while this parameter does not deviate
            if self.contrib[j] <= 0.25 and self.score < 1.0:
                # on the time scale of the continuous baselines (adapt_min), not per reading: a cuff
                # cycled every 5 minutes (a worried nurse) must not drag the baseline after a falling
                # pressure faster than one read hourly would
                self.base[j] = b + min(0.2, max(0.0, dt) / (60.0 * self.settings.adapt_min)) * (v - b)
            return
        if self.base[j] != self.base[j]:
            self._init[j].append(v)
            if len(self._init[j]) >= 2 or j == T_TEMP:
                self.base[j] = _median(self._init[j])
                self._init[j] = []

    def minute(self, t: float, means: tuple[float, float, float]) -> float:
        """Close one minute (``means``: HR, resp, SpO2 of clean samples, NaN if none). Returns C."""
        st = self.settings
        for j in range(3):
            ring = self.minutes[j]
            ring.pop(0)
            ring.append(means[j])
            if self.base[j] != self.base[j] and means[j] == means[j]:
                self._init[j].append(means[j])
                if len(self._init[j]) >= st.baseline_min:
                    self.base[j] = _median(self._init[j])
                    self._init[j] = []
        lv = self.level
        lv[T_HR] = _median(self.minutes[T_HR][-st.slow_min:])
        lv[T_RR] = _median(self.minutes[T_RR][-st.slow_min:])
        lv[T_SPO2] = _median(self.minutes[T_SPO2][-st.fast_min:])
        recent = [s for tt, s in self._nibp if t - tt <= 7200.0]
        lv[T_SYS] = max(recent) if recent else math.nan
        lv[T_TEMP] = self._temp[1] if t - self._temp[0] <= 6 * 3600.0 else math.nan
        dev = self.contrib
        for j in range(5):
            dev[j] = self._deviation(j, lv[j])
        slow = self.slow
        slow[0] = self._deviation(T_HR, _median(self.minutes[T_HR][-st.long_min:]), st.rate_only_gate)
        slow[1] = self._deviation(T_RR, _median(self.minutes[T_RR][-st.long_min:]), st.rate_only_gate)
        if len(recent) == 1:  # one NIBP reading alone counts half (it may be a cuff error)
            dev[T_SYS] *= 0.5
        pos = [d for d in dev if d >= 0.5]
        u = st.unlock
        both = dev[T_HR] >= st.sustained_dev and dev[T_RR] >= st.sustained_dev
        self.sustained = self.sustained + 1 if both else 0
        # not just activity: the parameters activity does not move (SpO2 falling, NIBP falling, temperature)
        # deviate by ``unlock`` together; three small deviations are as much evidence as one larger one
        if len(pos) >= 2 and dev[T_SPO2] + dev[T_SYS] + dev[T_TEMP] >= u:
            s, self.path = sum(d for d in dev if d > 0), "corroborated"
        elif self.sustained >= st.sustained_min:  # HR and resp up together for longer than activity lasts
            s, self.path = sum(d for d in dev if d > 0), "sustained"
        elif slow[0] >= 0.5 and slow[1] >= 0.5:  # heart rate and resp alone: activity, pain, anxiety look alike
            s, self.path = min(slow[0] + slow[1], st.rate_only_cap), "rate_only"
        else:
            s = max(0.0, max(slow[0], slow[1], dev[T_SPO2], dev[T_SYS], dev[T_TEMP]) - st.single_margin)
            self.path = "single" if s > 0 else ""
        self.score = s  # the evidence (what corroborates other rules); the gain only speeds the CUSUM
        gain = st.corroborated_gain if self.path == "corroborated" else 1.0
        self.cusum = max(0.0, self.cusum + gain * s - st.k)
        self._adapt(s)
        return self.cusum

    def _deviation(self, j: int, v: float, gate: float | None = None) -> float:
        b = self.base[j]
        if b != b or v != v:
            return 0.0
        st = self.settings
        sc = st.scale[j]
        if j == T_HR:
            z, a = (v - b) / sc, (v - 85.0) / sc
        elif j == T_RR:
            z, a = (v - b) / sc, (v - 18.0) / sc
        elif j == T_SPO2:
            z, a = (b - v) / sc, ((89.0 if self.scale2 else 95.0) - v) / sc
        elif j == T_SYS:
            z, a = (b - v) / sc, (115.0 - v) / sc
        else:
            z, a = abs(v - b) / sc, (abs(v - 37.0) - 0.5) / sc
        d = min(z - st.dead_band, a + (st.gate[j] if gate is None else gate))
        return 0.0 if d <= 0 else min(d, st.cap)

    def _adapt(self, s: float) -> None:
        if s >= 1.0:
            return
        alpha = 1.0 / self.settings.adapt_min
        for j in range(3):
            v, b = self.level[j], self.base[j]
            if v == v and b == b and self.contrib[j] <= 0.25:
                self.base[j] = b + alpha * (v - b)

    def reason(self) -> str:
        """Which parameters deviate, e.g. 'HR +18 vs own 76, resp +5 vs own 16 (trend score 3.1)'."""
        parts = []
        for j in range(5):
            if self.contrib[j] > 0:
                d = self.level[j] - self.base[j]
                fmt = "{:+.1f}" if j == T_TEMP else "{:+.0f}"
                own = "{:.1f}" if j == T_TEMP else "{:.0f}"
                parts.append(f"{NAMES[j]} {fmt.format(d)} vs own {own.format(self.base[j])}")
        if not parts:  # heart rate and resp alone, on their 30-minute medians
            parts = [f"{NAMES[j]} 30-min level up vs own {self.base[j]:.0f}" for j in (T_HR, T_RR) if self.slow[j] > 0]
        if self.path == "sustained":
            parts.append(f"HR and resp up together for {self.sustained} min, longer than activity lasts")
        return ", ".join(parts) + f" (trend score {self.score:.1f}, cusum {self.cusum:.0f})"
