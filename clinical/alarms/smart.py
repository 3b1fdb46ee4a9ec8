"""The smart alarm policy of one bed: quiet when nothing is wrong, early when something is.

Per sample O(1) and allocation-light; the caller (the clinical stage) maps each condition to an
alarm-manager condition and passes the reason on. What it does (docs/clinical.md, "Smart alarms"):

1. artifacts never feed a physiological condition (clinical/artifact.py: plausibility, rate of
   change, motion = HR jump with SpO2 drop, poor perfusion, ECG HR vs pleth pulse rate);
2. life-threatening short paths (high): HR >= 160 or <= 35, SpO2 <= 80, respiration lost,
   systolic <= 70 corroborated, each on clean samples for a few seconds (tachycardia within 10 s);
3. time-integrated limits (SatSeconds) for SpO2, HR and resp excursions: a brief one that resolves
   is only shown (low), a persistent, deep or corroborated one is medium;
4. NIBP readings: a low or high reading that nothing else confirms (a cuff error looks like one) is
   low priority "repeat NIBP"; confirmed by the heart rate, the trend or a second reading, medium;
5. the trend against the patient's own baseline (clinical/trend.py), medium: the early warning.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from clinical.alarms.satseconds import IntegratedLimit
from clinical.alarms.smart_conditions import (
    C_HEART_RATE_EXTREME_HIGH,
    C_HEART_RATE_EXTREME_LOW,
    C_HEART_RATE_HIGH,
    C_HEART_RATE_HIGH_BRIEF,
    C_HEART_RATE_LOW,
    C_HEART_RATE_LOW_BRIEF,
    C_NIBP_SYS_EXTREME_LOW,
    C_NIBP_SYS_HIGH,
    C_NIBP_SYS_HIGH_UNCONFIRMED,
    C_NIBP_SYS_LOW,
    C_NIBP_SYS_LOW_UNCONFIRMED,
    C_RESP_RATE_HIGH,
    C_RESP_RATE_HIGH_BRIEF,
    C_RESP_RATE_LOW,
    C_RESP_RATE_LOW_BRIEF,
    C_SHOCK_INDEX,
    C_SPO2_LOW,
    C_SPO2_LOW_BRIEF,
    C_SPO2_STEP,
    C_TEMPERATURE_HIGH,
    C_TEMPERATURE_LOW,
    CONDITIONS,
    IDX,
)
from clinical.alarms.smart_settings import Integrated, SmartPolicy
from clinical.artifact import CHANNELS, HR, PI, PR, RESP, SPO2, ArtifactDetector
from clinical.trend import T_HR, T_SYS, TrendDetector, TrendSettings

_MIN_SLOT = tuple({HR: 0, PR: 0, RESP: 1, SPO2: 2, PI: -1}[c] for c in range(5))  # by artifact channel
CHANNEL = CHANNELS
Emit = Callable[[int, bool, float, float | None, str], None]  # (condition index, on, t, value, reason)


class _Run:
    """How long a clean value has stayed beyond a limit (a life-threatening short path), in recorded time.

    Every row stands for the interval before it, as in the integrated limits; the first row of a run for
    that interval less half a second (the crossing lies somewhere inside it; half a second keeps a 1-Hz record
    on the hold it always had: a 7-s hold ends on the 8th row beyond the limit). Rows 4 or 5 s apart then end
    a 7-s hold on their 2nd row (7.5 / 9.5 s) where counting from the first row alone needed a 3rd, up to
    15 s after the true crossing. A single row is never a run (0)."""

    __slots__ = ("high", "lead", "limit", "prev", "since", "until")

    def __init__(self, limit: float, high: bool) -> None:
        self.limit = limit
        self.high = high
        self.since = math.nan
        self.until = -math.inf  # last sample beyond the limit
        self.prev = -math.inf  # the channel's previous row, beyond the limit or not
        self.lead = 0.0  # the first row's credit: its interval less half a second

    def add(self, v: float, t: float, slack: float = 0.0) -> float:
        """Seconds beyond the limit so far (0 when not beyond, and on a run's first row). ``slack``: how far
        apart two consecutive rows of the channel may be (1.5 sampling intervals): a run is continuous across
        rows that far apart."""
        beyond = v >= self.limit if self.high else v <= self.limit
        prev, self.prev = self.prev, t
        if beyond:
            if self.since != self.since or t - self.until > (3.0 if slack < 3.0 else slack):
                self.since = t
                gap, interval = t - prev, slack / 1.5  # one sampling interval (0 while unknown)
                lead = (gap if gap < interval else interval) - 0.5
                self.lead = lead if lead > 0.0 else 0.0
            self.until = t
            return t - self.since + self.lead if t > self.since else 0.0
        if t - self.until > (2.0 if slack < 2.0 else slack):  # a run survives a brief wobble back inside
            self.since = math.nan
        return 0.0


# (parameter, parameter) pairs of integrated limits that never corroborate each other: 0 SpO2 low, 1 HR high,
# 2 HR low, 3 resp high, 4 resp low (a parameter's own opposite limits; HR high with resp high: activity)
_NOT_CORROBORATING = frozenset({(1, 2), (2, 1), (3, 4), (4, 3), (1, 3), (3, 1)})
# an SpO2 falling steadily (spo2_fall_corroborates) is still falling: its last minute mean at least this far below
# the one before (a step down and then a flat stretch, as an apnoea cluster or a probe slipping gives, is not)
_FALL_MIN_STEP = 0.5
_STEP_ABRUPT = 3.0  # points from one held SpO2 reading to the next: a further step, not blood desaturating


def _steady(vals: list[float], times: list[float], since: float, band: float) -> bool:
    """Regular, as an ICD's stability criterion: the last five rows of the current run within ``band`` of
    each other, and the median change from one row to the next over the whole run (its last ten rows, at
    least two) at most a third of it: the onset ramp of a tachycardia does not count against it, a rate
    counted through motion that is steady for five lucky rows does not pass. In a run of three to five rows
    (rows 2-5 s apart) the change from its first row is left out: that row can still be on the onset ramp and
    is one of only two to four changes; at 1 Hz a run that reached its hold has eight rows or more."""
    xs = [v for v, tt in zip(vals, times, strict=True) if tt >= since and v == v]
    n = len(xs)
    if n < 2:
        return False
    first = 1 if 3 <= n <= 5 else 0  # sparse rows: a short run's first row may still be on the onset ramp
    last = xs[first:][-5:]
    if max(last) - min(last) > band:
        return False
    d = sorted(abs(xs[k + 1] - xs[k]) for k in range(first, n - 1))
    m = len(d)
    med = d[m // 2] if m % 2 else 0.5 * (d[m // 2 - 1] + d[m // 2])
    return med <= band / 3.0


class SmartBed:
    __slots__ = ("_hr_ewma", "_hr_ewma_t", "_hr_fast", "_hr_last", "_hr_last_t", "_lim", "_min_cnt", "_min_end",
                 "_min_seen", "_min_sum", "_nibp_prev", "_onset_hr", "_pend_dia", "_pend_sys", "_pi_low_since",
                 "_rel_hi", "_rel_lo", "_runs", "_sb_t", "_sb_why", "_sf_floor", "_sf_last", "_sf_since", "_sf_start",
                 "_sf_t", "_sf_vals", "art", "emit", "on", "p", "scale2", "trend", "values")

    def __init__(self, p: SmartPolicy, emit: Emit, scale2: bool = False) -> None:
        self.p = p
        self.emit = emit
        self.scale2 = scale2
        self.on = [False] * len(CONDITIONS)
        self.art = ArtifactDetector(jump_hr=p.motion_hr_jump, drop_spo2=p.motion_spo2_drop,
                                    window_s=p.motion_window_s, motion_hold_s=p.motion_hold_s,
                                    low_pi=p.low_perfusion_index, hr_pr_diff=p.hr_pr_max_diff,
                                    max_motion_s=p.motion_max_s, step_drop=p.spo2_step_drop,
                                    step_max_s=p.spo2_step_max_s,
                                    step_gap_s=p.spo2_step_gap_s, step_back_s=p.spo2_step_back_s)
        lt = p.life_threatening
        self._rel_hi = _Run(lt.hr_high, True)  # the same limits, moved by the patient's own baseline
        self._rel_lo = _Run(lt.hr_low, False)
        self._onset_hr = [0.0, 1000.0]  # smoothed HR when the current extreme-high / -low run began
        self._runs = (_Run(lt.hr_high, True), _Run(lt.hr_low, False),
                      _Run(lt.spo2_low_scale2 if scale2 else lt.spo2_low, False), _Run(lt.resp_low, False))
        self._lim = self._limits()
        self.trend = TrendDetector(TrendSettings(k=p.trend_k, h=p.trend_h, baseline_min=p.trend_baseline_min,
                                                 adapt_min=p.trend_adapt_min, rate_only_cap=p.trend_rate_only_cap,
                                                 rate_only_gate=p.trend_rate_only_gate,
                                                 corroborated_gain=p.trend_corroborated_gain,
                                                 sustained_min=p.trend_sustained_min),
                                   scale2)
        self._hr_last = [math.nan] * 10  # the last clean heart rates (steadiness of an extreme run)
        self._hr_last_t = [-math.inf] * 10
        self._hr_ewma = math.nan  # heart rate smoothed over 60 s (NIBP confirmation)
        self._hr_fast = math.nan  # over 10 s (onset of an extreme heart rate: abrupt or gradual)
        self._hr_ewma_t = -math.inf
        self._min_end = math.nan
        self._min_sum = [0.0, 0.0, 0.0]
        self._min_cnt = [0, 0, 0]
        self._min_seen = [0, 0, 0]  # every sample of the minute, artifacts and flagged ones included
        self._pend_sys = (math.nan, math.nan)  # (t, value) waiting for its diastolic
        self._pend_dia = (math.nan, math.nan)
        self._nibp_prev = (-math.inf, math.nan)
        self._pi_low_since = math.nan
        # an open SpO2 step's held readings (_step_kept_falling): their level after the step, since when below it
        self._sf_t = self._sf_start = math.nan
        self._sf_last = math.nan
        self._sf_vals: list[float] = []
        self._sf_floor = math.nan
        self._sf_since = math.nan
        self._sb_t, self._sb_why = math.nan, ""  # the last step's opening, and whether the SpO2 fell before it
        self.values = [math.nan] * 5  # last clean value per artifact channel (for reasons)

    def _limits(self) -> tuple[IntegratedLimit, ...]:
        p = self.p
        sp = p.spo2_low_scale2 if self.scale2 else p.spo2_low
        def mk(c: Integrated, high: bool) -> IntegratedLimit:
            return IntegratedLimit(c.limit, c.setting, c.persist_s, high=high, strong_factor=c.strong_factor,
                                   alone=c.alone)

        lims = mk(sp, False), mk(p.hr_high, True), mk(p.hr_low, False), mk(p.resp_high, True), mk(p.resp_low, False)
        self._lim = lims
        if hasattr(self, "trend"):
            self._own_limits()
        return lims

    def set_scale2(self, scale2: bool) -> None:
        if scale2 != self.scale2:
            self.scale2 = scale2
            self._lim = self._limits()
            self.trend.scale2 = scale2
            lt = self.p.life_threatening
            self._runs[2].limit = lt.spo2_low_scale2 if scale2 else lt.spo2_low

    # -- samples ----------------------------------------------------------------------------------------
    def sample(self, param: str, v: float, t: float, ecg_fresh: bool) -> bool:
        """One sample (NaN: no valid reading). ``ecg_fresh``: an ECG heart rate arrived in the last 10 s
        (pulse rate then only cross-checks it). Returns whether the sample was clean."""
        if t >= self._min_end or self._min_end != self._min_end:
            self._roll(t)
        ts = self._pend_sys[0]
        if ts == ts and t > ts + 2.0:
            self._nibp_eval(t)
        ch = CHANNEL.get(param, -1)
        if ch < 0:
            if v != v:
                return False
            if param == "nibp_sys":
                self._pend_sys = (t, v)
                if abs(self._pend_dia[0] - t) <= 2.0:
                    self._nibp_eval(t)
            elif param == "nibp_dia":
                self._pend_dia = (t, v)
                if abs(self._pend_sys[0] - t) <= 2.0:
                    self._nibp_eval(t)
            elif param == "temperature":
                self._temperature(v, t)
            return True
        art = self.art
        art.seen(ch, t)
        j = _MIN_SLOT[ch] if ch != PR or not ecg_fresh else -1
        if j >= 0:
            self._min_seen[j] += 1
        if v != v:
            return False
        clean = art.observe(ch, v, t)
        if ch == SPO2 and art.step_since == t and art.spo2_step():
            self._sb_t, self._sb_why = t, self._step_fell_before()  # judged as the step opens (motion or not)
        if ch == PI:
            self._perfusion(v, t)
            return clean
        if not clean:
            return False
        if ch == SPO2 and (art.spo2_step() or self.on[C_SPO2_STEP]) and not self._step_used(v, t):
            return False
        self.values[ch] = v
        if ch == HR or (ch == PR and not ecg_fresh):
            self._heart_rate(v, t)
        elif ch == SPO2:
            self._spo2(v, t)
        elif ch == RESP:
            self._resp(v, t)
        return True

    def _step_used(self, v: float, t: float) -> bool:
        """An SpO2 step is open (clinical/artifact.py): the reading is used only once another parameter
        corroborates it (a sustained tachycardia, respiration, the trend, a low NIBP; a heart rate that
        merely rises, as with activity, does not); until then it is a low-priority "check the probe"."""
        art = self.art
        if not art.spo2_step():
            self._set(C_SPO2_STEP, False, t, v)
            return True
        if v >= art.step_pre - 3.0:
            return True  # back where it was before the step (which closes once it stays back): used as it is
        fell_before = self._sb_why if self._sb_t == art.step_since else ""
        why = self._step_corroboration(t) or fell_before or self._step_kept_falling(v, t)
        if why:
            art.release_step()
            self._set(C_SPO2_STEP, False, t, v)
            return True
        how = (f"came back {art.step_pre - v:g} points below {art.step_pre:g} after {art.step_gap:.0f} s without a "
               "reading" if art.step_gap > 0.0
               else f"fell {art.step_pre - v:g} points within seconds from {art.step_pre:g}")
        self._set(C_SPO2_STEP, True, t, v, f"SpO2 {v:g} % {how}, heart rate and respiration unchanged: not used "
                  "until corroborated")
        return False

    def _step_fell_before(self) -> str:
        """The SpO2 was already falling before the step: the last clean minute mean below the one before (or,
        when that minute did not count, the one before it: motion), and the reading the step fell from already
        ``spo2_step_fall`` points below that earlier minute. Blood desaturating fast, read through noise or
        motion, drops that far between two readings now and then; a probe slips from whatever level the SpO2
        held ("" when not, or the rule is off)."""
        fall = self.p.spo2_step_fall
        m = self.trend.minutes[2]
        a, b, pre = m[-2] if m[-2] == m[-2] else m[-3], m[-1], self.art.step_pre  # NaN compares False
        if fall > 0 and a > b and a - pre >= fall:
            return f"SpO2 already falling before the step (minute means {a:.0f}, {b:.0f}, then {pre:g})"
        return ""

    def _step_kept_falling(self, v: float, t: float) -> str:
        """The held readings of an open SpO2 step stayed ``spo2_step_fall`` points below their level after the
        step (the median of its first 10 s, at least 3 readings) for 10 s, falling there gradually: a probe
        that slipped reads steadily, blood that desaturates keeps falling (a fast desaturation can itself open
        a step). A further abrupt drop (3 points from one held reading to the next) is the probe again: the
        level is taken anew after it."""
        fall = self.p.spo2_step_fall
        if fall <= 0:
            return ""
        since = self.art.step_since
        last, self._sf_last = self._sf_last, v
        if since != self._sf_t or last - v >= _STEP_ABRUPT:  # a new step, or a further one: take the level
            self._sf_t = since
            self._sf_start = t
            self._sf_vals.clear()
            self._sf_floor = self._sf_since = math.nan
        if self._sf_floor != self._sf_floor:
            if t - self._sf_start <= 10.0 or len(self._sf_vals) < 3:
                self._sf_vals.append(v)
                return ""
            vals = sorted(self._sf_vals)
            self._sf_floor = vals[len(vals) // 2]
        if v > self._sf_floor - fall:
            self._sf_since = math.nan
            return ""
        if self._sf_since != self._sf_since:
            self._sf_since = t
        if t - self._sf_since < 10.0:
            return ""
        return f"SpO2 kept falling after the step ({self._sf_floor - v:.0f} points below its level after it)"

    def _step_corroboration(self, t: float) -> str:
        on = self.on
        for k, name in ((1, "HR high"), (3, "resp high"), (4, "resp low")):
            if self._beyond(k, t):
                return name
        if on[IDX["resp_lost"]] or on[C_NIBP_SYS_LOW] or on[C_NIBP_SYS_EXTREME_LOW]:
            return "respiration lost or NIBP low"
        if self.trend.score >= self.p.trend_corroborates_at:
            return f"trend score {self.trend.score:.1f}"
        return ""

    def _set(self, i: int, on: bool, t: float, value: float | None, reason: str = "") -> None:
        if self.on[i] != on:
            self.on[i] = on
            self.emit(i, on, t, value, reason)

    def _levels(self, lim: IntegratedLimit, v: float, t: float, med: int, low: int, own: int, unit: str,
                slack: float) -> None:
        lim.add(v, t, slack)
        on = self.on
        if lim.index < lim.setting and not on[med] and not on[low]:
            return  # the common case: inside, or a small excursion
        corroborated = self._corroborated(own, t)
        lv = lim.level(t, corroborated)
        why = ""
        if lv and not self.on[med if lv == 2 else low]:
            word = "above" if lim.high else "below"
            why = (f"{CONDITIONS[med].param} {v:g}{unit}, integrated {lim.index:.0f} {word} {lim.limit:g} "
                   f"(setting {lim.setting:g}) for {lim.held_s(t):.0f} s"
                   + ("; corroborated by " + self._corroboration_text(own, t) if corroborated else ""))
        self._set(med, lv == 2, t, v, why)
        self._set(low, lv == 1, t, v, why)

    def _beyond(self, k: int, t: float) -> bool:
        """Integrated limit ``k`` corroborates another parameter: its index is at the setting, for a fast heart
        rate since at least ``hr_corroborates_after_s`` (a burst of tachycardia or a rate counted through
        motion lasts seconds; the tachycardia of hypoxaemia or of a bleed is sustained)."""
        lim = self._lim[k]
        if lim.index < lim.setting:
            return False
        return k != 1 or lim.held_s(t) >= self.p.hr_corroborates_after_s

    def _corroborated(self, own: int, t: float) -> bool:
        """Another parameter beyond its own integrated limit, the trend deviating, or a confirmed low NIBP.
        A fast heart rate and fast breathing do not corroborate each other: together they are what activity,
        pain and anxiety look like (the trend judges that pair on 30-minute medians)."""
        for k in range(len(self._lim)):
            if k != own and (k, own) not in _NOT_CORROBORATING and self._beyond(k, t):
                return True
        return (self.trend.score >= self.p.trend_corroborates_at or self.on[C_NIBP_SYS_LOW]
                or (own == 0 and self._spo2_falling() > 0))

    def _spo2_falling(self) -> float:
        """Points SpO2 fell over the last 3 closed minutes when each minute's clean mean was below the one
        before, the last by at least ``_FALL_MIN_STEP``, and the last is below the limit (else 0; 0 too when
        the rule is off): blood desaturating, not an apnoea cluster, whose minute means recover between dips."""
        need = self.p.spo2_fall_corroborates
        if need <= 0:
            return 0.0
        m = self.trend.minutes[2]
        a, b, c, d = m[-4], m[-3], m[-2], m[-1]  # NaN (no clean sample that minute) compares False
        if a > b > c and c - d >= _FALL_MIN_STEP and a - d >= need and d < self._lim[0].limit:
            return a - d
        return 0.0

    def _corroboration_text(self, own: int, t: float) -> str:
        names = ("SpO2", "HR high", "HR low", "resp high", "resp low")
        parts = [names[k] for k in range(len(self._lim))
                 if k != own and (k, own) not in _NOT_CORROBORATING and self._beyond(k, t)]
        if self.trend.score >= self.p.trend_corroborates_at:
            parts.append(f"trend score {self.trend.score:.1f}")
        if own == 0 and (fell := self._spo2_falling()):
            parts.append(f"SpO2 falling for 3 min ({fell:.0f} points)")
        return ", ".join(parts) or "NIBP"

    def _heart_rate(self, v: float, t: float) -> None:
        lt = self.p.life_threatening
        last = self._hr_last
        last.pop(0)
        last.append(v)
        last_t = self._hr_last_t
        last_t.pop(0)
        last_t.append(t)
        slack = self.art.slack(HR)
        prev = self._hr_fast
        dt = t - self._hr_ewma_t
        if prev == prev:
            a = math.exp(-dt / 10.0)
            self._hr_fast = a * prev + (1 - a) * v
            a = math.exp(-dt / 60.0)
            self._hr_ewma = a * self._hr_ewma + (1 - a) * v
        else:
            self._hr_fast = self._hr_ewma = v
        self._hr_ewma_t = t
        self._min_add(0, v)
        i_hi, i_lo = C_HEART_RATE_EXTREME_HIGH, C_HEART_RATE_EXTREME_LOW
        # an abrupt change (ventricular tachycardia, heart block) alarms at the absolute limit; a gradual one
        # (exertion on a chronic tachycardia, sleep in an athlete) only beyond the patient's own margin
        r_hi, r_lo = self._runs[0], self._runs[1]
        run = r_hi.add(v, t, slack)
        if run == 0.0 and r_hi.since == t:
            self._onset_hr[0] = prev if prev == prev else v
        rel = self._rel_hi.add(v, t, slack)
        abrupt = self._onset_hr[0] <= lt.hr_high - lt.abrupt_change
        # a gradual one is life-threatening only with signs of instability (as ACLS treats tachy- and
        # bradycardia): the other parameters beyond their limits, the trend, a low blood pressure
        signs = "" if abrupt or rel < lt.hr_high_delay_s else self._instability()
        if (run >= lt.hr_high_delay_s and (abrupt or signs)) or (self.on[i_hi] and run > 0):
            # regular (as an ICD's stability criterion): a ventricular tachycardia's rate is steady from one
            # second to the next, a heart rate counted through motion jumps about
            # over the whole run (its last ten rows; every 15 s: two or three): one lucky stretch of five rows
            # in a heart rate counted through motion is not a regular rhythm
            steady = _steady(last, last_t, r_hi.since, lt.hr_steady_band)
            if not self.on[i_hi] and steady and self.art.hr_confirmed(v, t):
                why = "abrupt onset" if abrupt else (f"beyond own baseline + "
                                                     f"{self.p.hr_extreme_high_above_baseline:g}, with {signs}")
                self._set(i_hi, True, t, v, f"HR {v:g} /min >= {lt.hr_high:g} for {run:.0f} s ({why}), steady, "
                          "confirmed, not motion")
        elif self.on[i_hi]:
            self._set(i_hi, False, t, v)
        run = r_lo.add(v, t, slack)
        if run == 0.0 and r_lo.since == t:
            # the rate it fell from: the smoothed heart rate, but never above the patient's own baseline (a
            # burst of tachycardia that ends back at a sleeping athlete's 33 /min is no abrupt bradycardia)
            ref = prev if prev == prev else v
            base = self.trend.base[T_HR]
            self._onset_hr[1] = min(ref, base) if base == base else ref
        rel = self._rel_lo.add(v, t, slack)
        abrupt = self._onset_hr[1] >= lt.hr_low + lt.abrupt_change
        signs = "" if abrupt or rel < lt.hr_low_delay_s or self.on[i_lo] else self._instability()
        on = (run >= lt.hr_low_delay_s and (abrupt or bool(signs) or (self.on[i_lo] and rel > 0))
              and self.art.hr_confirmed(v, t))
        if on != self.on[i_lo] and (on or run == 0.0):
            self._set(i_lo, on, t, v, f"HR {v:g} /min <= {lt.hr_low:g} for {run:.0f} s"
                      + (" (abrupt onset)" if abrupt else f" and below own baseline - "
                                                          f"{self.p.hr_extreme_low_below_baseline:g}, with {signs}"))
        self._levels(self._lim[1], v, t, C_HEART_RATE_HIGH, C_HEART_RATE_HIGH_BRIEF, 1, " /min", slack)
        self._levels(self._lim[2], v, t, C_HEART_RATE_LOW, C_HEART_RATE_LOW_BRIEF, 2, " /min", slack)

    def _instability(self) -> str:
        """Signs that an extreme heart rate that came on gradually is not tolerated ("" when none). Not a fast
        respiration: heart rate and resp up together are what exertion looks like (they never corroborate each
        other's integrated limits either), and ACLS's signs of instability are of perfusion and oxygenation."""
        lims = self._lim
        parts = [n for k, n in ((0, "SpO2 low"), (4, "resp low")) if lims[k].index >= lims[k].setting]
        on = self.on
        if on[C_NIBP_SYS_LOW] or on[C_NIBP_SYS_EXTREME_LOW] or on[C_NIBP_SYS_LOW_UNCONFIRMED]:
            parts.append("NIBP low")
        if on[IDX["spo2_extreme_low"]] or on[IDX["resp_lost"]]:
            parts.append("SpO2 or respiration life-threatening")
        if self.trend.score >= self.p.trend_corroborates_at:
            parts.append(f"trend score {self.trend.score:.1f}")
        return ", ".join(parts)

    def _spo2(self, v: float, t: float) -> None:
        lt = self.p.life_threatening
        self._min_add(2, v)
        slack = self.art.slack(SPO2)
        run = self._runs[2].add(v, t, slack)
        i = IDX["spo2_extreme_low"]
        if (run >= lt.spo2_low_delay_s) != self.on[i]:
            self._set(i, not self.on[i], t, v, f"SpO2 {v:g} % <= {lt.spo2_low:g} for {run:.0f} s, not motion")
        self._levels(self._lim[0], v, t, C_SPO2_LOW, C_SPO2_LOW_BRIEF, 0, " %", slack)

    def _resp(self, v: float, t: float) -> None:
        lt = self.p.life_threatening
        self._min_add(1, v)
        slack = self.art.slack(RESP)
        run = self._runs[3].add(v, t, slack)
        i = IDX["resp_lost"]
        if (run >= lt.resp_low_delay_s) != self.on[i]:
            self._set(i, not self.on[i], t, v, f"resp {v:g} /min <= {lt.resp_low:g} for {run:.0f} s")
        self._levels(self._lim[3], v, t, C_RESP_RATE_HIGH, C_RESP_RATE_HIGH_BRIEF, 3, " /min", slack)
        self._levels(self._lim[4], v, t, C_RESP_RATE_LOW, C_RESP_RATE_LOW_BRIEF, 4, " /min", slack)

    def _perfusion(self, v: float, t: float) -> None:
        i = IDX["poor_perfusion"]
        if v < self.p.low_perfusion_index:
            if self._pi_low_since != self._pi_low_since:
                self._pi_low_since = t
            if t - self._pi_low_since >= 30.0:
                self._set(i, True, t, v, f"perfusion index {v:g} < {self.p.low_perfusion_index:g} for 30 s: "
                          "SpO2 and pulse rate not used")
        elif v >= self.p.low_perfusion_index * 1.3:
            self._pi_low_since = math.nan
            self._set(i, False, t, v)

    def _temperature(self, v: float, t: float) -> None:
        if not 30.0 <= v <= 43.0:
            return
        self.trend.temperature(t, v)
        p = self.p
        self._set(C_TEMPERATURE_HIGH, v >= p.temperature_high, t, v, f"temperature {v:g} >= {p.temperature_high:g}")
        self._set(C_TEMPERATURE_LOW, v <= p.temperature_low, t, v, f"temperature {v:g} <= {p.temperature_low:g}")

    # -- NIBP -------------------------------------------------------------------------------------------
    def _nibp_eval(self, now: float) -> None:
        ts, sys = self._pend_sys
        self._pend_sys = (math.nan, math.nan)
        td, dia = self._pend_dia
        if abs(td - ts) > 2.0:
            dia = math.nan
        p = self.p
        err = IDX["nibp_cuff_error"]
        if not 40.0 <= sys <= 280.0 or (dia == dia and (dia >= sys - 10.0 or dia < 15.0)):
            self._set(err, True, ts, sys, f"NIBP {sys:g}/{dia:g} implausible (cuff error): ignored")
            return
        self._set(err, False, ts, sys)
        pt, prev = self._nibp_prev
        self._nibp_prev = (ts, sys)
        recent_prev = prev if ts - pt <= 3600.0 else math.nan
        self.trend.nibp(ts, sys)
        hr = self._hr_ewma if now - self._hr_ewma_t <= 120.0 else math.nan
        base_hr = self.trend.base[0]
        hr_up = hr == hr and (hr >= 110.0 or (base_hr == base_hr and hr >= base_hr + 20.0))
        low = sys <= p.nibp_sys_low
        # the previous reading confirms a low one when it is low too and, once the patient's own baseline is
        # known, the pair is also below it by nibp_sys_low_below_own (judged on the less alarming of the two)
        own_sys = self.trend.base[T_SYS]
        pair = recent_prev <= p.nibp_sys_low and not (
            own_sys == own_sys and (sys if sys > recent_prev else recent_prev) > own_sys - p.nibp_sys_low_below_own)
        confirmed = low and (hr_up or self.trend.score >= 1.0 or pair)
        prev_txt = ""
        if recent_prev == recent_prev:
            prev_txt = f" (previous {recent_prev:g}" + (f", own {own_sys:.0f}" if own_sys == own_sys else "") + ")"
        why = (f"NIBP sys {sys:g}{prev_txt}" + (f", HR {hr:.0f}" if hr == hr else "")
               + f", trend score {self.trend.score:.1f}")
        self._set(C_NIBP_SYS_EXTREME_LOW, confirmed and sys <= p.life_threatening.nibp_sys_low, ts, sys, why)
        self._set(C_NIBP_SYS_LOW, confirmed and sys > p.life_threatening.nibp_sys_low, ts, sys, why)
        self._set(C_NIBP_SYS_LOW_UNCONFIRMED, low and not confirmed, ts, sys, why)
        high = sys >= p.nibp_sys_high
        both = high and recent_prev >= p.nibp_sys_high
        self._set(C_NIBP_SYS_HIGH, both, ts, sys, why)
        self._set(C_NIBP_SYS_HIGH_UNCONFIRMED, high and not both, ts, sys, why)
        # the shock index takes the heart rate on its 10-minute median (the trend's level), so an activity bout
        # during a reading that happens to come out low does not make one
        base_sys, hr10 = self.trend.base[T_SYS], self.trend.level[T_HR]
        shock = False
        if p.shock_index > 0 and hr10 == hr10 and base_hr == base_hr and base_sys == base_sys:
            si, si0 = hr10 / sys, base_hr / base_sys
            d = p.shock_index_delta
            shock = (si >= p.shock_index and si >= si0 + p.shock_index_rise and hr10 >= base_hr + d
                     and sys <= base_sys - d)
            if shock and not self.on[C_SHOCK_INDEX]:
                why = (f"shock index {si:.2f} (own {si0:.2f}): HR {hr10:.0f} (10-min median) vs own {base_hr:.0f}, "
                       f"NIBP sys {sys:g} vs own {base_sys:.0f}")
        self._set(C_SHOCK_INDEX, shock, ts, round(hr10 / sys, 2) if hr10 == hr10 else None, why)

    # -- minutes and time -------------------------------------------------------------------------------
    def _min_add(self, j: int, v: float) -> None:
        self._min_sum[j] += v
        self._min_cnt[j] += 1

    def _roll(self, t: float) -> None:
        if self._min_end != self._min_end:
            self._min_end = (math.floor(t / 60.0) + 1) * 60.0
            return
        while t >= self._min_end:
            c = self._min_cnt
            s = self._min_sum
            n = self._min_seen
            # a minute counts only when most of its samples were clean (one clean reading in a minute of
            # artifacts or of a half-off probe is no measure of the minute)
            means = (s[0] / c[0] if c[0] and 2 * c[0] >= n[0] else math.nan,
                     s[1] / c[1] if c[1] and 2 * c[1] >= n[1] else math.nan,
                     s[2] / c[2] if c[2] and 2 * c[2] >= n[2] else math.nan)
            self._min_sum = [0.0, 0.0, 0.0]
            self._min_cnt = [0, 0, 0]
            self._min_seen = [0, 0, 0]
            end = self._min_end
            if self.p.trend:
                cu = self.trend.minute(end, means)
                i = IDX["deterioration_trend"]
                on = cu >= self.trend.settings.h or (self.on[i] and cu > 0.25 * self.trend.settings.h)
                self._set(i, on, end, round(self.trend.score, 2), self.trend.reason() if on else "")
                self._own_limits()
            if t - end > 600.0:  # a long gap: the minutes in between are empty, the trend sees no data
                self._min_end = (math.floor(t / 60.0) + 1) * 60.0
                self.trend.cusum = 0.0
                return
            self._min_end = end + 60.0

    def _own_limits(self) -> None:
        """Limits follow the patient's own baseline (an athlete's 45 /min, a chronic 115 /min)."""
        p = self.p
        if not p.baseline_relative:
            return
        hr, rr = self.trend.base[0], self.trend.base[1]
        lt = p.life_threatening
        if hr == hr:
            self._rel_hi.limit = max(lt.hr_high, hr + p.hr_extreme_high_above_baseline)
            self._lim[1].limit = max(p.hr_high.limit, hr + p.hr_high_above_baseline)
            self._lim[2].limit = min(p.hr_low.limit, hr - p.hr_low_below_baseline)
            self._rel_lo.limit = min(lt.hr_low, hr - p.hr_extreme_low_below_baseline)
        if rr == rr:
            self._lim[3].limit = max(p.resp_high.limit, rr + p.resp_high_above_baseline)
            self._lim[4].limit = min(p.resp_low.limit, rr - p.resp_low_below_baseline)

    def tick(self, t: float) -> None:
        """Called with the bed's clock (each second): closes minutes, evaluates a pending NIBP."""
        if t >= self._min_end:
            self._roll(t)
        if self._pend_sys[0] == self._pend_sys[0] and t > self._pend_sys[0] + 2.0:
            self._nibp_eval(t)

    def stale(self, ch: int, t: float) -> None:
        """No clean data on channel ``ch`` for a while: its conditions end (a lost signal is technical)."""
        names = {HR: ("heart_rate_extreme_high", "heart_rate_extreme_low", "heart_rate_high", "heart_rate_high_brief",
                      "heart_rate_low", "heart_rate_low_brief"),
                 SPO2: ("spo2_extreme_low", "spo2_low", "spo2_low_brief"),
                 RESP: ("resp_lost", "resp_rate_high", "resp_rate_high_brief", "resp_rate_low",
                        "resp_rate_low_brief")}.get(ch, ())
        for n in names:
            self._set(IDX[n], False, t, None)
        for k in {HR: (1, 2), SPO2: (0,), RESP: (3, 4)}.get(ch, ()):
            self._lim[k].reset()
        for k in {HR: (0, 1), SPO2: (2,), RESP: (3,)}.get(ch, ()):
            self._runs[k].since = math.nan
