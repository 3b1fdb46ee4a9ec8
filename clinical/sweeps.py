"""Scoring sweeps on the tick: NEWS2 per bed (with the stale-data check) and the anomaly model over every
bed with a new minute bucket, in ONE batched invoke.

NEWS2 is spread over the ticks so each bed is visited about once a second and no single tick walks
thousands of beds (that would stall the event loop and with it every alarm's latency): beds whose
values changed are rescored on their visit (at most every ``RESCORE_S``), the others every 10 s.
"""

from __future__ import annotations

import math

from clinical.alarms.manager import AlarmManager
from clinical.alarms.profiles import ClinicalConfig
from clinical.anomaly import AnomalyScorer
from clinical.beds import Bed, BedRegistry
from clinical.bedstate import RESP, SPO2, SYS, TEMP
from clinical.news2 import News2, news2
from clinical.technical import TechnicalConditions

RESCORE_S = 5.0  # a bed whose values changed is rescored at most this often (NEWS2 triggers hold for minutes)


def _opt(v: float) -> float | None:
    return None if v != v else v


def _news2_reason(res: News2) -> str:
    parts = [f"{k} {v}" for k, v in res.subscores.items() if v]
    miss = f"; missing {', '.join(res.missing)}" if res.missing else ""
    return f"NEWS2 {res.total}: " + ", ".join(parts) + miss


class News2Sweep:
    def __init__(self, manager: AlarmManager, registry: BedRegistry, technical: TechnicalConditions) -> None:
        self.manager = manager
        self.registry = registry
        self.technical = technical
        self._last = -math.inf
        self._i = 0

    def run(self, now: float, wall: float) -> None:
        beds = self.registry.as_list()
        n = len(beds)
        if not n:
            return
        elapsed = now - self._last
        self._last = now
        k = n if not elapsed < 1.0 else min(n, max(1, math.ceil(n * elapsed)))
        i = self._i
        stale = self.technical.stale
        for _ in range(k):
            if i >= n:
                i = 0
            b = beds[i]
            i += 1
            if b.smart is not None:
                b.smart.tick(now)
            if (b.st.dirty and now - b.news2_at >= RESCORE_S) or now - b.news2_at >= 10.0:
                self.score(b, now, wall)
            stale(b, now, wall)
        self._i = i

    def score(self, b: Bed, now: float, wall: float) -> None:
        st = b.st
        st.dirty = False
        b.news2_at = now
        p = b.prof.p.news2
        c = st.context
        ca, na, ta = p.continuous_max_age_s, p.nibp_max_age_s, p.temperature_max_age_s
        hr = st.heart_rate(now, ca)
        sb = b.smart
        sys = st.fresh(SYS, now, na) if sb is None else sb.trend.robust_sys(now, na)  # smart: no lone cuff error
        res = news2(
            resp_rate=_opt(st.fresh(RESP, now, ca)), spo2=_opt(st.fresh(SPO2, now, ca)),
            systolic=_opt(sys), pulse=_opt(hr), temperature=_opt(st.fresh(TEMP, now, ta)),
            on_oxygen=c.on_oxygen, consciousness=c.consciousness, scale2=c.scale2,
        )
        st.news2 = res
        if not p.enabled:
            return
        m, bed, pat, pr = self.manager, st.bed, st.patient, b.prof
        total = res.total
        hi = total >= p.high_at or (m.is_on(bed, "news2_high") and total >= p.high_at - 1)
        if hi and sb is not None and m.get_alarm(bed, "news2_high") is None:
            # the smart policy: a high NEWS2 on the patient's usual values (COPD on oxygen, chronic
            # tachycardia) is shown; with the trend against the own baseline rising it is high priority
            sp, tr = sb.p, sb.trend
            hi = (total >= sp.news2_high_alone_at or c.consciousness != "A" or tr.score >= sp.trend_corroborates_at
                  or tr.cusum >= 0.5 * tr.settings.h)
        med = not hi and (total >= p.medium_at or (m.is_on(bed, "news2_medium") and total >= p.medium_at - 1))
        three = p.single_three != "off" and not hi and not med and res.single_parameter_3
        score = float(total)
        for spec, on in ((pr.news2_high, hi), (pr.news2_medium, med), (pr.news2_three, three)):
            if on or m.is_on(bed, spec.name):
                why = _news2_reason(res) if on and m.get_alarm(bed, spec.name) is None else ""
                m.update(bed, pat, spec, on, now, score=score, recv_mono=now, t_wall=wall, reason=why)


class AnomalySweep:
    """Every ``interval_s``: beds with a new bucket and enough history, at most ``max_batch`` per invoke."""

    def __init__(self, cfg: ClinicalConfig, manager: AlarmManager, registry: BedRegistry) -> None:
        self.cfg = cfg
        self.manager = manager
        self.registry = registry
        self.scorer: AnomalyScorer | None = None
        self.threshold = math.nan
        self.next_at = -math.inf
        self.batches = 0
        self.beds_scored = 0

    def set_scorer(self, scorer: AnomalyScorer | None) -> None:
        """Swap the model (model slots: promote / roll back). Threshold from config, else the model."""
        self.scorer = scorer
        t = self.cfg.anomaly.threshold
        self.threshold = t if t is not None else (scorer.threshold if scorer is not None else math.nan)

    def due(self, now: float) -> bool:
        if self.scorer is None or now < self.next_at:
            return False
        self.next_at = now + self.cfg.anomaly.interval_s
        return True

    def run(self, now: float, wall: float) -> None:
        scorer = self.scorer
        assert scorer is not None
        limit = self.cfg.anomaly.max_batch
        ready: list[Bed] = []
        for b in self.registry.as_list():
            b.st.roll(now)
            if b.st.window_ready and b.st.buckets_filled >= scorer.min_buckets and b.prof.p.anomaly:
                if len(ready) == limit:
                    self.next_at = now  # more beds are waiting: score them on the next tick
                    break
                ready.append(b)
        if not ready:
            return
        scores = scorer.score([b.st for b in ready])
        self.batches += 1
        self.beds_scored += len(ready)
        thr = self.threshold
        m = self.manager
        explain = getattr(scorer, "explain", None)
        for k, (b, sc) in enumerate(zip(ready, scores, strict=True)):
            b.st.window_ready = False
            s = float(sc)
            b.anomaly = s
            b.st.history.score(now, s)
            on = s >= thr or (b.anomaly_on and s >= 0.8 * thr)
            if on or b.anomaly_on:
                if on and not b.anomaly_on:
                    b.anomaly_since, b.anomaly_peak = now, s
                elif on and s > b.anomaly_peak:
                    b.anomaly_peak = s
                b.anomaly_on = on
                why = ""
                if on and m.get_alarm(b.st.bed, "anomaly") is None:
                    # the alarm is raised after its delay, on a score that may be back below the threshold (the
                    # condition holds down to 0.8 x it): say when it was reached and how high it went
                    ago = now - b.anomaly_since
                    held = (f"; reached {ago / 60:.0f} min ago, highest {b.anomaly_peak:.3f}"
                            if ago >= 30.0 else "")
                    why = (f"model {getattr(scorer, 'name', 'vitals-anomaly')} "
                           f"{getattr(scorer, 'version', '?')}: score {s:.3f} (threshold {thr:.3f}{held})")
                    if explain is not None:
                        why += f"; {explain(k)}"
                    n2 = getattr(b.st.news2, "total", None)  # what the nurse weighs it with: NEWS2, the trend
                    if n2 is not None:
                        why += f"; NEWS2 {n2}"
                    if b.smart is not None:
                        why += f", trend score {b.smart.trend.score:.1f}"
                m.update(b.st.bed, b.st.patient, b.prof.anomaly, on, now, score=round(s, 4), recv_mono=now,
                         t_wall=wall, reason=why)
