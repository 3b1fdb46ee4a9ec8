"""Time-integrated limits in the manner of Nellcor's SatSeconds, for any continuous parameter.

Each second beyond the limit adds the distance beyond it to an index (SpO2 low limit 90: 88 for 2 s
adds 4, 86 for 3 s adds 12); each second back inside takes the distance inside away again; the
index never goes below 0. A brief, shallow excursion never reaches the setting; a deep or long one
does, sooner the deeper it is (a severity-scaled delay). Nellcor applies it to SpO2 only; PulseGate
also uses it for heart rate and respiration rate excursions that are not life-threatening.

Two stages make "an excursion that resolves on its own stays low priority":

- level 1 (shown, low priority): the index reached ``setting``;
- level 2 (medium): the index reached ``setting`` and either stayed at or above it for
  ``persist_s`` (it did not resolve), or reached ``strong_factor`` x ``setting`` (a deep
  excursion), or the caller reports corroboration by another parameter. A limit made with
  ``alone=False`` becomes medium only with corroboration (a slow heart rate alone, above the
  life-threatening limit, is shown: an athlete asleep at 35 /min is not a bradycardia to treat).

Samples flagged as artifact are not passed in (the index holds). Each sample counts for the time
since the previous one, up to ``max_step_s`` or the ``slack`` the caller passes (1.5 sampling
intervals of the channel): the index is in value x seconds of recorded time, so a record sampled
every 15 s reaches the setting when a 1 Hz one does, and a dropout does not look like a long excursion.
"""

from __future__ import annotations

import math


class IntegratedLimit:
    __slots__ = ("_above_since", "_last_t", "alone", "high", "index", "limit", "max_step_s", "persist_s",
                 "setting", "strong")

    def __init__(self, limit: float, setting: float, persist_s: float, *, high: bool, strong_factor: float = 3.0,
                 max_step_s: float = 5.0, alone: bool = True) -> None:
        if setting <= 0 or persist_s < 0 or strong_factor < 1:
            raise ValueError("setting must be > 0, persist_s >= 0, strong_factor >= 1")
        self.limit = limit
        self.setting = setting
        self.persist_s = persist_s
        self.strong = setting * strong_factor
        self.high = high
        self.alone = alone
        self.max_step_s = max_step_s
        self.index = 0.0
        self._last_t = math.nan
        self._above_since = math.nan  # when the index last reached the setting

    def reset(self) -> None:
        self.index = 0.0
        self._last_t = math.nan
        self._above_since = math.nan

    def excess(self, v: float) -> float:
        """Distance beyond the limit (negative inside)."""
        return v - self.limit if self.high else self.limit - v

    def add(self, v: float, t: float, slack: float = 0.0) -> None:
        """One clean sample at time ``t`` (seconds); ``slack``: the longest step it may stand for."""
        last = self._last_t
        dt = 1.0 if last != last else t - last
        if dt <= 0:
            return  # same second or older: nothing to integrate
        cap = self.max_step_s if slack < self.max_step_s else (slack if slack < 120.0 else 120.0)
        if dt > cap:
            dt = cap
        self._last_t = t
        e = v - self.limit if self.high else self.limit - v
        idx = self.index + e * dt
        if idx < 0:
            idx = 0.0
        self.index = idx
        if idx >= self.setting:
            if self._above_since != self._above_since:
                self._above_since = t
        else:
            self._above_since = math.nan

    def level(self, t: float, corroborated: bool = False) -> int:
        """0 inside, 1 shown (low), 2 medium."""
        idx = self.index
        if idx < self.setting:
            return 0
        if corroborated or (self.alone and (idx >= self.strong or t - self._above_since >= self.persist_s)):
            return 2
        return 1

    def held_s(self, t: float) -> float:
        """For how long the index has been at or above the setting (0 if below)."""
        s = self._above_since
        return 0.0 if s != s else t - s
