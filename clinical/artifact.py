"""Artifact detection for one bed: which samples must never feed a physiological alarm.

Pure and O(1) per sample (a handful of floats per bed, no allocation). Evidence used, all from the
devices' own numbers (REFERENCES.md, "Smarter alarms"):

- quality flags: the caller passes only samples without flags (a flagged sample is no reading);
- plausibility: values outside what a body can show (HR < 20 or > 250 /min, SpO2 < 40 %,
  resp > 70 /min, perfusion index outside 0-30) are artifacts;
- rate of change: a heart rate that jumps >= ``jump_hr`` /min within ``window_s``, an SpO2 that
  falls >= ``drop_spo2`` % within ``window_s`` (also across a dropout of up to ``GAP_S``);
- motion signature: a heart-rate (or pulse-rate) jump and an SpO2 drop within ``window_s`` of each
  other mark heart rate, pulse rate and SpO2 as artifact for ``motion_hold_s`` after the last sign,
  and for as long as they stay away from their values before the motion (at most ``max_motion_s``:
  a new level that lasts longer is taken as real; pleth readings at poor perfusion, a probe that
  slipped half off, do not count as staying away);
- perfusion: a perfusion index below ``low_pi`` (probe half off, cold hands) makes SpO2 and pulse
  rate unreliable while it lasts;
- cross-check: ECG heart rate against pleth pulse rate; while both are fresh and good perfusion,
  a difference beyond ``hr_pr_diff`` leaves the heart rate unconfirmed (:meth:`hr_confirmed`);
- SpO2 step: a saturation that falls ``step_drop`` points or more from one reading to the next within
  ``STEP_WINDOW_S`` (faster than blood desaturates: a probe slipping half off, light, pressure) is
  *suspect* until it is back within 3 points of its value before the step on every reading for
  ``step_back_s`` (two readings at least), for at most ``step_max_s``; the bed's policy uses a suspect
  reading only when another parameter corroborates it.
  This is the check that remains when the monitor sends no perfusion index and no pulse rate.

Time, not samples: every window is in seconds of recorded time, widened to the channel's own
sampling interval (:meth:`seen` keeps an estimate per channel, flagged rows included), so a record
exported every 15 or 60 s is judged as a 1 Hz one is: "the previous value", "fresh" and "at the
same time" mean within about one sampling interval, never within a fixed number of samples.
"""

from __future__ import annotations

import math

import numpy as np

HR, PR, SPO2, RESP, PI = range(5)
GAP_S = 30.0  # a reading after a dropout longer than this is "back" (and settles before it is trusted)
REF_MEMORY_S = 300.0  # a value before a dropout this short still counts as "before" (flagged bursts hide their start)
STEP_WINDOW_S = 3.0  # an SpO2 step: the fall between two readings at most this far apart (or 1.5 intervals)
PLAUSIBLE = ((20.0, 250.0), (20.0, 250.0), (40.0, 100.0), (0.0, 70.0), (0.0, 30.0))
# the channels as sets for observe() (``ch in (PR, SPO2)`` of two globals builds a tuple at every test)
_RATES, _PLETH = frozenset((HR, PR)), frozenset((PR, SPO2))


class ArtifactDetector:
    __slots__ = ("_drop_t", "_gap", "_jump_ch", "_jump_pre", "_jump_start", "_jump_t", "_last_t", "_last_v",
                 "_m_start", "_pre", "_ref_t", "_ref_v", "_seen_t", "_settle_until", "_step_back", "_step_t", "_win",
                 "drop_spo2", "hr_pr_diff", "iv", "jump_hr", "low_pi", "max_motion_s", "motion_events",
                 "motion_hold_s", "motion_until", "pi", "pi_t", "step_back_s", "step_drop", "step_gap", "step_gap_s",
                 "step_max_s", "step_pre", "window_s")

    def __init__(self, *, jump_hr: float = 15.0, drop_spo2: float = 4.0, window_s: float = 5.0,
                 motion_hold_s: float = 15.0, low_pi: float = 0.3, hr_pr_diff: float = 15.0,
                 max_motion_s: float = 90.0, step_drop: float = 6.0, step_max_s: float = 1800.0,
                 step_gap_s: float = 300.0, step_back_s: float = 10.0) -> None:
        self.jump_hr = jump_hr
        self.drop_spo2 = drop_spo2
        self.window_s = window_s
        self.motion_hold_s = motion_hold_s
        self.low_pi = low_pi
        self.hr_pr_diff = hr_pr_diff
        self.max_motion_s = max_motion_s
        self.step_drop = step_drop
        self.step_max_s = step_max_s
        self.step_gap_s = step_gap_s
        self.step_back_s = step_back_s
        self.step_pre = math.nan  # SpO2 before a step (NaN: no step open)
        self.step_gap = 0.0  # the dropout the step came across (s); 0: two consecutive readings
        self._step_t = -math.inf
        self._step_back = math.nan  # since when the readings of an open step are back (NaN: not back)
        self._m_start = math.nan  # start of the current motion episode
        self._pre = [math.nan] * 5  # values before it
        self._last_v = [math.nan] * 5  # last plausible value per channel
        self._last_t = [-math.inf] * 5
        self._ref_v = [math.nan] * 5  # value ~window_s ago (rate-of-change reference)
        self._ref_t = [-math.inf] * 5
        self._jump_t = -math.inf  # last HR/PR jump
        self._jump_start = -math.inf  # first jump of the current HR/PR excursion
        self._jump_pre = math.nan  # the value before it
        self._jump_ch = HR
        self._drop_t = -math.inf  # last SpO2 drop
        self._settle_until = -math.inf  # the pleth came back: SpO2 trusted once its pulse rate agrees with the ECG
        self.motion_until = -math.inf
        self.motion_events = 0
        self.pi = math.nan
        self.pi_t = -math.inf
        self.iv = [math.nan] * 5  # sampling interval per channel (s), every row counted
        self._seen_t = [-math.inf] * 5
        self._gap = [GAP_S] * 5  # "fresh": within GAP_S, or two sampling intervals
        self._win = [window_s] * 5  # "at the same time": within window_s, or 1.5 sampling intervals

    def seen(self, ch: int, t: float) -> None:
        """A row of channel ``ch`` at ``t`` (valid, flagged or empty): updates its sampling interval. A gap
        moves the estimate by at most a fifth per row, so one dropout does not widen every window."""
        dt = t - self._seen_t[ch]
        self._seen_t[ch] = t
        if not 0.0 < dt <= 300.0:
            return
        iv = self.iv[ch]
        if iv != iv:
            iv = dt
        else:
            iv += 0.2 * ((dt if dt < 2.0 * iv else 2.0 * iv) - iv)
        self.iv[ch] = iv
        g = 2.0 * iv
        self._gap[ch] = g if g > GAP_S else GAP_S
        w = 1.5 * iv
        self._win[ch] = w if w > self.window_s else self.window_s

    def slack(self, ch: int) -> float:
        """1.5 sampling intervals of ``ch`` (0 while unknown): how far apart two consecutive rows may be."""
        iv = self.iv[ch]
        return 1.5 * iv if iv == iv else 0.0

    def reset(self) -> None:
        self.__init__(jump_hr=self.jump_hr, drop_spo2=self.drop_spo2, window_s=self.window_s,  # type: ignore[misc]
                      motion_hold_s=self.motion_hold_s, low_pi=self.low_pi, hr_pr_diff=self.hr_pr_diff,
                      max_motion_s=self.max_motion_s, step_drop=self.step_drop, step_max_s=self.step_max_s,
                      step_gap_s=self.step_gap_s, step_back_s=self.step_back_s)

    def poor_perfusion(self, t: float) -> bool:
        """A recent perfusion index below the limit (no index from the device: not known to be poor)."""
        return self.pi < self.low_pi and t - self.pi_t <= self._gap[PI]

    def motion(self, t: float) -> bool:
        return t < self.motion_until

    def observe(self, ch: int, v: float, t: float) -> bool:
        """Feed one unflagged sample of channel ``ch``; True if it is clean (may feed an alarm)."""
        lo, hi = PLAUSIBLE[ch]
        if not lo <= v <= hi:
            return False
        if ch == PI:
            self.pi = v
            self.pi_t = t
            return True
        # rate-of-change against the value about window_s ago
        rt = self._ref_t[ch]
        gap_s = self._gap[ch]
        if t - rt > self.window_s:  # a new reference: the previous value, also across a short dropout
            lt = self._last_t[ch]
            fresh = t - lt <= (REF_MEMORY_S if gap_s < REF_MEMORY_S else gap_s)
            self._ref_v[ch] = self._last_v[ch] if fresh else v
            self._ref_t[ch] = t  # the reference holds for window_s from now
        ref = self._ref_v[ch]
        old = self._last_v[ch]
        gap = t - self._last_t[ch]
        back = gap > gap_s  # the first reading after a dropout (or ever)
        if ch in _PLETH and gap > self._win[ch]:
            self._settle_until = t + self.max_motion_s
        if ch == SPO2:
            self._step(v, t, old, gap)
        self._last_v[ch] = v
        self._last_t[ch] = t
        if ref == ref:
            if ch in _RATES and abs(v - ref) >= self.jump_hr:
                if t - self._jump_t > self._win[ch]:
                    self._jump_start, self._jump_pre, self._jump_ch = t, ref, ch
                self._jump_t = t
                if t - self._drop_t <= self._win[SPO2]:
                    self._motion(t)
            elif ch == SPO2 and ref - v >= self.drop_spo2:
                self._drop_t = t
                if t - self._jump_t <= self._win[self._jump_ch] or self._still_jumped(t):
                    self._motion(t)
            elif ch == SPO2 and back and not old - v < self.drop_spo2 and self._still_jumped(t):
                self._motion(t)  # it comes back low (or is new) while the heart rate is still jumped: motion
                if old == old and not self._pre[SPO2] >= old:
                    # before the motion it read what it read before the dropout, not the reading it came
                    # back with: "SpO2 back where it was" (_sensors_agree) is judged against that
                    self._pre[SPO2] = old
        if ch == RESP:
            return True
        ms = self._m_start
        if ms == ms and ch in _RATES and self._sensors_agree(t):
            # the ECG and the pleth, two independent sensors, agree on a new rate while SpO2 is back where
            # it was: the rate is real (a ventricular tachycardia that began during motion), not motion
            self._m_start = math.nan
            self.motion_until = t
            ms = math.nan
        if ms == ms:  # in a motion episode: still away from the values before it?
            if t - ms > self.max_motion_s:
                self._m_start = math.nan
            else:
                pre = self._pre[ch]
                # a pleth reading at poor perfusion (a probe that slipped half off as the motion began) staying
                # away is the probe, not motion going on: it does not hold the heart rate as motion
                if (pre == pre and (abs(v - pre) > 10.0 if ch != SPO2 else pre - v > 3.0)
                        and not (ch in _PLETH and self.poor_perfusion(t))):
                    if t + 3.0 > self.motion_until:
                        self.motion_until = t + 3.0
                elif t >= self.motion_until:
                    self._m_start = math.nan
        if t < self.motion_until:
            return False
        if ch in _PLETH and self.poor_perfusion(t):
            return False
        if t < self._settle_until and ch in _PLETH:
            # after a pleth dropout the oximeter is trusted once its pulse rate matches the ECG heart rate
            # (the bedside check of an SpO2 reading); with no ECG to compare, at once
            hr_t, pr_t = self._last_t[HR], self._last_t[PR]
            if t - hr_t <= self._win[HR] and t - pr_t <= self._win[PR]:
                if abs(self._last_v[HR] - self._last_v[PR]) > self.hr_pr_diff:
                    return ch == PR  # the pulse rate only cross-checks; the SpO2 reading is not used
                self._settle_until = t
            elif t - hr_t > self._win[HR]:
                self._settle_until = t
        return True

    def _step(self, v: float, t: float, old: float, gap: float) -> None:
        pre = self.step_pre
        if pre == pre:
            # back within 3 points of its value before the step, on every reading for step_back_s (and on
            # two readings at least; 0: the first reading back): one noisy reading of a half-off probe that
            # touches it is not back
            if v < pre - 3.0:
                self._step_back = math.nan
            elif self._step_back != self._step_back:
                self._step_back = t
            back_s = self.step_back_s
            if t - self._step_t > self.step_max_s or (t - self._step_back >= back_s
                                                      and (t > self._step_back or back_s <= 0.0)):
                self.step_pre = self._step_back = math.nan
            return
        w = 1.5 * self.iv[SPO2] if self.iv[SPO2] == self.iv[SPO2] else 0.0
        if w < STEP_WINDOW_S:
            w = STEP_WINDOW_S
        if old - v >= self.step_drop and (gap <= w or gap <= self.step_gap_s):
            self.step_pre = old
            self._step_back = math.nan
            self.step_gap = gap if gap > w else 0.0
            self._step_t = t

    @property
    def step_since(self) -> float:
        """When the open SpO2 step (or the last one) opened."""
        return self._step_t

    def spo2_step(self) -> bool:
        """An SpO2 step is open: the saturation fell faster than blood desaturates and has not come back."""
        return self.step_pre == self.step_pre

    def release_step(self) -> None:
        """Another parameter corroborates the low SpO2: it is used as it is."""
        self.step_pre = self._step_back = math.nan

    def _still_jumped(self, t: float) -> bool:
        """The heart rate (or pulse rate) that jumped is still away from its value before the jump: an SpO2
        drop now (often after a flagged stretch that hid it) belongs to the same motion."""
        jc = self._jump_ch
        return (t - self._jump_start <= self.max_motion_s and t - self._last_t[jc] <= self._win[jc]
                and abs(self._last_v[jc] - self._jump_pre) >= self.jump_hr)

    def _sensors_agree(self, t: float) -> bool:
        """Fresh ECG heart rate and pleth pulse rate within 5 /min of each other, and a fresh SpO2 back within
        3 % of its value before the motion."""
        lt, lv, w = self._last_t, self._last_v, self._win
        if t - lt[HR] > w[HR] or t - lt[PR] > w[PR] or t - lt[SPO2] > w[SPO2] or abs(lv[HR] - lv[PR]) > 5.0:
            return False
        pre = self._pre[SPO2]
        return pre == pre and lv[SPO2] >= pre - 3.0

    def _motion(self, t: float) -> None:
        if t >= self.motion_until:
            self.motion_events += 1
            if self._m_start != self._m_start:
                self._m_start = t
                for c in (HR, PR, SPO2):
                    self._pre[c] = self._ref_v[c] if t - self._ref_t[c] <= 2 * self._win[c] + 1 else math.nan
        self.motion_until = t + self.motion_hold_s

    def hr_confirmed(self, hr: float, t: float) -> bool:
        """The ECG heart rate agrees with a fresh pleth pulse rate, or there is none to compare with."""
        prt = self._last_t[PR]
        if t - prt > self._win[PR] or self.poor_perfusion(t) or t < self.motion_until:
            return t >= self.motion_until
        return abs(self._last_v[PR] - hr) <= self.hr_pr_diff


def clean_flags(t: np.ndarray, values: dict[str, np.ndarray], detector: ArtifactDetector | None = None,
                ) -> dict[str, np.ndarray]:
    """Which samples of a recording the gateway would take as clean (the smart policy's artifact check,
    samples in time order, at equal times in the order ``heart_rate, pulse_rate, spo2, perfusion_index,
    resp_rate``, as a monitor sends them): training builds its buckets only from these, as the gateway does.

    ``values[p]`` is aligned with ``t`` (seconds); NaN is no reading. Channels the detector does not judge
    (NIBP, temperature) are clean wherever they have a number.
    """
    det = detector or ArtifactDetector()
    out = {p: ~np.isnan(np.asarray(v, np.float64)) for p, v in values.items()}
    judged = [(p, CHANNELS[p]) for p in ("heart_rate", "pulse_rate", "spo2", "perfusion_index", "resp_rate")
              if p in values]
    cols = [np.asarray(values[p], np.float64).tolist() for p, _ in judged]
    flags = [out[p] for p, _ in judged]
    observe = det.observe
    seen = det.seen
    for k, tk in enumerate(np.asarray(t, np.float64).tolist()):
        for c, (_, ch) in enumerate(judged):
            v = cols[c][k]
            seen(ch, tk)
            if v == v and not observe(ch, v, tk):
                flags[c][k] = False
    return out


CHANNELS = {"heart_rate": HR, "pulse_rate": PR, "spo2": SPO2, "resp_rate": RESP, "perfusion_index": PI}
