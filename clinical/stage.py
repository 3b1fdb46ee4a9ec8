"""ClinicalStage: the pipeline stage from Samples to alarms.

per sample (O(1)):   bed state -> threshold rules of the bed's profile -> alarm manager
                     quality SENSOR_OFF -> technical condition of that parameter
per device event:    disconnected / silent / sensor_off / probe_fault / low_signal -> technical alarms
per tick:            NEWS2 for beds whose values changed (each second), stale-data checks,
                     the anomaly model over every bed with a new minute bucket in ONE batched
                     invoke (every ``anomaly.interval_s``), silence expiry and escalation.

Every alarm state change goes to the ``sinks`` (local MQTT publisher, nurse page:
non-blocking ``offer`` callables) first and then to ``on_alarm`` (the lead's
uplink). A sink that raises is counted and never stops the pipeline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from clinical.alarms.conditions import CompiledProfile, technical_specs
from clinical.alarms.manager import AlarmManager, AuditRecord, ConditionSpec
from clinical.alarms.model import Alarm, AlarmUpdate
from clinical.alarms.profiles import BedConfig, ClinicalConfig
from clinical.anomaly import AnomalyScorer
from clinical.bedstate import HR, PR, RESP, SLOT, SLOTS, SPO2, SYS, TEMP, BedState, PatientContext, trend
from clinical.news2 import News2, news2
from clinical.sample import DeviceEvent, Quality, Sample
from runtime.logs import get_logger

log = get_logger("clinical.stage")
_CONTINUOUS = (HR, SPO2, RESP)


class _Bed:
    __slots__ = ("anomaly", "anomaly_on", "devices_down", "explicit_profile", "news2_at", "pending_tech", "prof",
                 "rule_on", "sensor_off", "st")

    def __init__(self, st: BedState, prof: CompiledProfile) -> None:
        self.st = st
        self.prof = prof
        self.rule_on = [False] * len(prof.rules)
        self.sensor_off = 0  # bit mask of slots whose last sample said SENSOR_OFF
        self.devices_down: set[str] = set()
        self.pending_tech: dict[str, tuple[ConditionSpec, float]] = {}  # event conditions awaiting their delay
        self.anomaly = math.nan
        self.anomaly_on = False
        self.explicit_profile = False
        self.news2_at = -math.inf


class ClinicalStage:
    """Stage protocol of edge/pipeline.py. ``now`` comes from samples (recv_mono) and tick()."""

    def __init__(
        self,
        config: ClinicalConfig | None = None,
        beds: Sequence[BedConfig] = (),
        *,
        sinks: Iterable[Callable[[AlarmUpdate], None]] = (),
        on_alarm: Callable[[AlarmUpdate], None] | None = None,
        on_audit: Callable[[AuditRecord], None] | None = None,
        scorer: AnomalyScorer | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        id_base: int | None = None,
    ) -> None:
        self.cfg = config or ClinicalConfig()
        self.sinks = list(sinks)
        self.on_alarm = on_alarm
        self.scorer = scorer
        self.clock = clock
        self.manager = AlarmManager(
            self._dispatch, self.cfg.escalation, self.cfg.max_silence_s, clock, wall,
            int(wall() * 1000) if id_base is None else id_base, on_audit,
        )
        self._profiles = {n: CompiledProfile(n, p, self.cfg) for n, p in self.cfg.all_profiles().items()}
        self._tech = technical_specs(self.cfg)
        self.beds: dict[str, _Bed] = {}
        self._beds_cache: list[_Bed] | None = None
        self._pending: set[_Bed] = set()
        for b in beds:
            self.add_bed(b)
        self.sink_errors = 0
        self.samples = 0
        self.anomaly_batches = 0
        self.anomaly_beds_scored = 0
        self._last_sweep = -math.inf
        self._sweep_i = 0
        self._next_anomaly = -math.inf
        self.anomaly_threshold = math.nan
        self.set_scorer(scorer)

    @classmethod
    def from_config(
        cls, config: ClinicalConfig, beds: Sequence[BedConfig] = (), **kwargs: Any
    ) -> ClinicalStage:
        """Build the stage and load the anomaly model named by ``[clinical.anomaly] model_dir`` (if any).

        A model that fails to load or verify raises (ModelError / ManifestError): the daemon decides
        whether to start without it (NEWS2 and thresholds keep working) or refuse to start.
        """
        scorer = kwargs.pop("scorer", None)
        a = config.anomaly
        if scorer is None and a.model_dir is not None:
            from clinical.anomaly import VitalsAnomalyModel

            scorer = VitalsAnomalyModel(a.model_dir, a.num_threads, a.trusted_keys)
        return cls(config, beds, scorer=scorer, **kwargs)

    def set_scorer(self, scorer: AnomalyScorer | None) -> None:
        """Swap the anomaly model (model slots: promote / roll back). Threshold from config, else the model."""
        self.scorer = scorer
        t = self.cfg.anomaly.threshold
        self.anomaly_threshold = t if t is not None else (scorer.threshold if scorer is not None else math.nan)

    def stats(self) -> dict[str, int]:
        """Counters for /metrics."""
        return {"samples": self.samples, "beds": len(self.beds), "alarms_raised": self.manager.raised_total,
                "alarms_open": self.manager.open_count, "sink_errors": self.sink_errors,
                "anomaly_batches": self.anomaly_batches, "anomaly_beds_scored": self.anomaly_beds_scored}

    # -- beds ---------------------------------------------------------------------------------------------
    def add_bed(self, b: BedConfig) -> None:
        ctx = PatientContext(b.on_oxygen, b.spo2_scale2, b.consciousness)
        name = b.profile or (self.cfg.scale2_profile if b.spo2_scale2 else None) or self.cfg.default_profile
        prof = self._profiles[name]
        bed = self.beds[b.id] = _Bed(BedState(b.id, prof.name, b.patient, ctx), prof)
        self._beds_cache = None
        bed.explicit_profile = b.profile is not None

    def _bed(self, bed: str, patient: str) -> _Bed:
        b = self.beds.get(bed)
        if b is None:
            prof = self._profiles[self.cfg.default_profile]
            b = self.beds[bed] = _Bed(BedState(bed, prof.name, patient), prof)
            self._beds_cache = None
        elif patient and patient != b.st.patient:  # set, or changed by the device (HL7 PID-3: a new admission)
            b.st.patient = patient
        return b

    def forget_bed(self, bed: str) -> None:
        """The patient left: drop the bed's state and clear its alarms."""
        b = self.beds.pop(bed, None)
        if b is not None:
            self._beds_cache = None
            self._pending.discard(b)
            self.manager.forget_bed(bed)

    def set_context(self, bed: str, *, on_oxygen: bool | None = None, scale2: bool | None = None,
                    consciousness: str | None = None) -> None:
        """Patient context from charting (or a replay file). Forces a NEWS2 recompute."""
        b = self._bed(bed, "")
        c = b.st.context
        if on_oxygen is not None:
            c.on_oxygen = on_oxygen
        if scale2 is not None:
            c.scale2 = scale2
            if not b.explicit_profile:
                name = (self.cfg.scale2_profile if scale2 else None) or self.cfg.default_profile
                if name != b.prof.name:
                    self._switch_profile(b, self._profiles[name])
        if consciousness is not None:
            if consciousness not in ("A", "C", "V", "P", "U"):
                raise ValueError(f"consciousness {consciousness!r} is not one of A, C, V, P, U")
            c.consciousness = consciousness
        b.st.dirty = True

    # -- Stage protocol: hot path ---------------------------------------------------------------------------
    def _switch_profile(self, b: _Bed, prof: CompiledProfile) -> None:
        """End the old profile's threshold conditions, then evaluate with the new rules."""
        for r in b.prof.rules:
            if b.rule_on[r.idx]:
                self.manager.update(b.st.bed, b.st.patient, r.spec, False, self.clock())
        b.prof = prof
        b.st.profile = prof.name
        b.rule_on = [False] * len(prof.rules)

    def on_sample(self, s: Sample) -> None:
        self.samples += 1
        b = self._bed(s.bed, s.patient)
        st = b.st
        i = st.update(s)
        if i < 0:
            j = SLOT.get(s.parameter, -1)
            if j >= 0 and s.quality & Quality.SENSOR_OFF and not b.sensor_off & (1 << j):  # on the transition
                b.sensor_off |= 1 << j
                # one probe, one alarm: keyed by the device (an oximeter's SpO2 and pulse rate share a probe)
                self._tech_update(b, "sensor_off", s.device or s.parameter, True, s.recv_mono, s.recv_wall)
            return
        if b.sensor_off & (1 << i):
            b.sensor_off &= ~(1 << i)
            self._tech_update(b, "sensor_off", s.device or s.parameter, False, s.recv_mono, s.recv_wall)
        if i == PR and s.recv_mono - st.t_valid[HR] <= 10.0:
            return  # ECG heart rate is present: its rules already run on it
        rules = b.prof.by_slot[i]
        if not rules:
            return
        v = s.value
        on_list = b.rule_on
        for r in rules:
            was = on_list[r.idx]
            if r.high:
                on = v >= r.limit or (was and v > r.clear)
            else:
                on = v <= r.limit or (was and v < r.clear)
            if on or was:
                on_list[r.idx] = on
                self.manager.update(st.bed, st.patient, r.spec, on, s.recv_mono, value=v, recv_mono=s.recv_mono,
                                    t_wall=s.recv_wall)

    def _tech_update(self, b: _Bed, cond: str, param: str, active: bool, now: float, wall: float) -> None:
        spec = self._tech[cond](param)
        self.manager.update(b.st.bed, b.st.patient, spec, active, now, recv_mono=now, t_wall=wall)
        if active and spec.delay_s > 0 and self.manager.get_alarm(b.st.bed, spec.name) is None:
            b.pending_tech[spec.name] = (spec, wall - now)  # confirmed from tick() once its delay ran out
            self._pending.add(b)
        else:
            b.pending_tech.pop(spec.name, None)

    def on_device_event(self, e: DeviceEvent) -> None:
        b = self._bed(e.bed, "")
        cond = e.condition
        if cond == "connected":
            cond, active = "disconnected", not e.active
        else:
            active = e.active
        if cond not in self._tech:
            return
        if cond == "sensor_off":
            param = e.device or e.parameter  # the same key as the samples' sensor-off state: one alarm per probe
        else:
            param = e.parameter if cond in ("probe_fault", "low_signal") else e.device
        if cond in ("disconnected", "silent"):
            key = f"{cond}:{e.device}"
            if active:
                b.devices_down.add(key)
            else:
                b.devices_down.discard(key)
        if cond == "sensor_off" and e.parameter in SLOT:
            bit = 1 << SLOT[e.parameter]
            b.sensor_off = b.sensor_off | bit if active else b.sensor_off & ~bit
        self._tech_update(b, cond, param, active, e.recv_mono, e.recv_wall)

    # -- periodic -------------------------------------------------------------------------------------------
    def tick(self, now_mono: float, now_wall: float) -> None:
        now = now_mono
        m = self.manager
        if self._pending:
            for b in list(self._pending):
                for name, (spec, offset) in list(b.pending_tech.items()):
                    m.update(b.st.bed, b.st.patient, spec, True, now, recv_mono=now, t_wall=now + offset)
                    if not m.is_on(b.st.bed, name) or m.get_alarm(b.st.bed, name) is not None:
                        del b.pending_tech[name]
                if not b.pending_tech:
                    self._pending.discard(b)
        self._sweep(now, now_wall)
        if self.scorer is not None and now >= self._next_anomaly:
            self._next_anomaly = now + self.cfg.anomaly.interval_s
            self._anomaly(now, now_wall)
        m.tick(now)

    def _bed_list(self) -> list[_Bed]:
        if self._beds_cache is None:
            self._beds_cache = list(self.beds.values())
        return self._beds_cache

    def _sweep(self, now: float, wall: float) -> None:
        """NEWS2 (beds whose values changed, and every bed each 10 s) and stale-data checks.

        Spread over the ticks so each bed is visited about once a second and no single tick walks
        thousands of beds (that would stall the event loop and with it every alarm's latency).
        """
        beds = self._bed_list()
        n = len(beds)
        if not n:
            return
        elapsed = now - self._last_sweep
        self._last_sweep = now
        k = n if not elapsed < 1.0 else min(n, max(1, math.ceil(n * elapsed)))
        i = self._sweep_i
        for _ in range(k):
            if i >= n:
                i = 0
            b = beds[i]
            i += 1
            if b.st.dirty or now - b.news2_at >= 10.0:
                self._news2(b, now, wall)
            self._stale(b, now, wall)
        self._sweep_i = i

    def _news2(self, b: _Bed, now: float, wall: float) -> None:
        st = b.st
        st.dirty = False
        b.news2_at = now
        p = b.prof.p.news2
        c = st.context
        ca, na, ta = p.continuous_max_age_s, p.nibp_max_age_s, p.temperature_max_age_s
        hr = st.heart_rate(now, ca)
        res = news2(
            resp_rate=_opt(st.fresh(RESP, now, ca)), spo2=_opt(st.fresh(SPO2, now, ca)),
            systolic=_opt(st.fresh(SYS, now, na)), pulse=_opt(hr), temperature=_opt(st.fresh(TEMP, now, ta)),
            on_oxygen=c.on_oxygen, consciousness=c.consciousness, scale2=c.scale2,
        )
        st.news2 = res
        if not p.enabled:
            return
        m, bed, pat, pr = self.manager, st.bed, st.patient, b.prof
        total = res.total
        hi = total >= p.high_at or (m.is_on(bed, "news2_high") and total >= p.high_at - 1)
        med = not hi and (total >= p.medium_at or (m.is_on(bed, "news2_medium") and total >= p.medium_at - 1))
        three = p.single_three != "off" and not hi and not med and res.single_parameter_3
        score = float(total)
        for spec, on in ((pr.news2_high, hi), (pr.news2_medium, med), (pr.news2_three, three)):
            if on or m.is_on(bed, spec.name):
                m.update(bed, pat, spec, on, now, score=score, recv_mono=now, t_wall=wall)

    def _stale(self, b: _Bed, now: float, wall: float) -> None:
        """No valid HR/SpO2/resp for stale_after_s on a bed that had them: technical; physiological ones end."""
        stale_s = self.cfg.technical.stale_after_s
        no_data = self._tech["no_data"]
        m = self.manager
        st = b.st
        fresh_s = b.prof.p.fresh_s
        for i in _CONTINUOUS:
            t = st.t_valid[i]
            if t == -math.inf:
                continue
            if i == HR and now - st.t_valid[PR] <= stale_s:
                t = max(t, st.t_valid[PR])
            age = now - t
            if age > fresh_s:
                for r in b.prof.by_slot[i]:
                    if b.rule_on[r.idx]:
                        b.rule_on[r.idx] = False
                        m.update(st.bed, st.patient, r.spec, False, now)
            stale = age > stale_s and not b.devices_down
            spec = no_data(SLOTS[i])
            if stale or m.is_on(st.bed, spec.name):
                m.update(st.bed, st.patient, spec, stale, now, recv_mono=now, t_wall=wall)

    def _anomaly(self, now: float, wall: float) -> None:
        assert self.scorer is not None
        limit = self.cfg.anomaly.max_batch
        ready: list[_Bed] = []
        for b in self._bed_list():
            b.st.roll(now)
            if b.st.window_ready and b.st.buckets_filled >= self.scorer.min_buckets and b.prof.p.anomaly:
                if len(ready) == limit:
                    self._next_anomaly = now  # more beds are waiting: score them on the next tick
                    break
                ready.append(b)
        if not ready:
            return
        scores = self.scorer.score([b.st for b in ready])
        self.anomaly_batches += 1
        self.anomaly_beds_scored += len(ready)
        thr = self.anomaly_threshold
        m = self.manager
        for b, sc in zip(ready, scores, strict=True):
            b.st.window_ready = False
            s = float(sc)
            b.anomaly = s
            on = s >= thr or (b.anomaly_on and s >= 0.8 * thr)
            if on or b.anomaly_on:
                b.anomaly_on = on
                m.update(b.st.bed, b.st.patient, b.prof.anomaly, on, now, score=round(s, 4), recv_mono=now,
                         t_wall=wall)

    # -- delivery -------------------------------------------------------------------------------------------
    def _dispatch(self, u: AlarmUpdate) -> None:
        for sink in self.sinks:
            try:
                sink(u)
            except Exception:
                self.sink_errors += 1
                log.error("alarm_sink_failed", exc=True, alarm_id=u.alarm.alarm_id)
        if self.on_alarm is not None:
            try:
                self.on_alarm(u)
            except Exception:
                self.sink_errors += 1
                log.error("alarm_callback_failed", exc=True, alarm_id=u.alarm.alarm_id)

    # -- user actions (nurse page) --------------------------------------------------------------------------
    def acknowledge(self, alarm_id: str, initials: str) -> Alarm:
        return self.manager.acknowledge(alarm_id, initials, self.clock())

    def silence(self, alarm_id: str, initials: str, duration_s: float) -> Alarm:
        return self.manager.silence(alarm_id, initials, duration_s, self.clock())

    # -- views ----------------------------------------------------------------------------------------------
    def scores(self) -> dict[str, tuple[int | None, float | None]]:
        """Per bed: (NEWS2 total or None, anomaly score or None) as last computed (for summaries)."""
        out: dict[str, tuple[int | None, float | None]] = {}
        for bed, b in self.beds.items():
            n = b.st.news2
            out[bed] = (n.total if isinstance(n, News2) else None, None if math.isnan(b.anomaly) else b.anomaly)
        return out

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """JSON-able view for the nurse page: beds with live values, trends, NEWS2; alarms by priority."""
        now = self.clock() if now is None else now
        beds = []
        for bed_id in sorted(self.beds):
            b = self.beds[bed_id]
            st = b.st
            values: dict[str, Any] = {}
            for i, name in enumerate(SLOTS):
                if st.t_valid[i] == -math.inf:
                    continue
                age = now - st.t_valid[i]
                values[name] = {"v": round(st.value[i], 1), "age": round(age, 1), "trend": trend(st, i),
                                "stale": age > (b.prof.p.fresh_s if i in _CONTINUOUS or i == PR else 4 * 3600)}
            n = st.news2
            beds.append({
                "bed": bed_id, "profile": st.profile, "values": values,
                "news2": n.total if isinstance(n, News2) else None,
                "news2_response": n.response.name.lower() if isinstance(n, News2) else None,
                "news2_missing": list(n.missing) if isinstance(n, News2) else [],
                "anomaly": None if math.isnan(b.anomaly) else round(b.anomaly, 3),
                "on_oxygen": st.context.on_oxygen, "scale2": st.context.scale2,
                "consciousness": st.context.consciousness,
            })
        return {"beds": beds, "alarms": [a.to_json() for a in self.manager.sorted_open()]}


def _opt(v: float) -> float | None:
    return None if v != v else v
