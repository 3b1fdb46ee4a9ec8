"""ClinicalStage: the pipeline stage from Samples to alarms, composed of named parts.

per sample (O(1)):   bed registry -> bed state -> threshold rules of the bed's profile -> alarm manager
                     (clinical/beds.py, clinical/bedstate.py, clinical/rules.py)
                     quality SENSOR_OFF -> technical condition of that probe (clinical/technical.py)
per device event:    disconnected / silent / sensor_off / probe_fault / low_signal -> technical alarms
per tick:            delayed technical conditions confirmed; NEWS2 sweeps with stale-data checks (each bed
                     about once a second); the anomaly model over every bed with a new minute bucket in
                     ONE batched invoke every ``anomaly.interval_s`` (clinical/sweeps.py); silence expiry
                     and escalation (the alarm manager).
views:               the nurse page's JSON and the summaries' scores (clinical/ward_view.py).

Every alarm state change goes to the ``sinks`` (local MQTT publisher, nurse page: non-blocking ``offer``
callables) first and then to ``on_alarm`` (the uplink). A sink that raises is counted and never stops
the pipeline. Pure: no asyncio and no I/O; ``now`` comes from samples (recv_mono) and tick().
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from clinical.alarms.manager import AlarmManager, AuditRecord
from clinical.alarms.model import Alarm, AlarmUpdate
from clinical.alarms.profiles import BedConfig, ClinicalConfig
from clinical.anomaly import AnomalyScorer
from clinical.beds import Bed, BedRegistry
from clinical.bedstate import AGE_INTERVALS, HR, PR, SLOT
from clinical.rules import evaluate_rules
from clinical.sample import DeviceEvent, Quality, Sample
from clinical.smart_alarms import SmartAlarms
from clinical.sweeps import AnomalySweep, News2Sweep
from clinical.technical import TechnicalConditions
from clinical.ward_view import bed_trends, scores, snapshot
from runtime.logs import get_logger

log = get_logger("clinical.stage")
ECG_FRESH_S = 10.0  # the ECG heart rate counts as present this long after its last valid value (age_limit)
_VALID = Quality.VALID  # an enum member read from its class costs ~0.1 us (Python 3.11): bound once


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
        self.clock = clock
        self.manager = AlarmManager(
            self._dispatch, self.cfg.escalation, self.cfg.max_silence_s, clock, wall,
            int(wall() * 1000) if id_base is None else id_base, on_audit, self.cfg.recurrence_s,
        )
        m = self.manager
        self.smart = SmartAlarms(m)
        self.registry = BedRegistry(
            self.cfg, lambda b, spec: m.update(b.st.bed, b.st.patient, spec, False, self.clock()), m.forget_bed,
            self.smart.attach)
        self.beds: dict[str, Bed] = self.registry.beds
        self.technical = TechnicalConditions(self.cfg, m, self.registry)
        self.news2 = News2Sweep(m, self.registry, self.technical)
        self.anomaly = AnomalySweep(self.cfg, m, self.registry)
        for b in beds:
            self.registry.add(b)
        self.sink_errors = 0
        self.samples = 0
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

    # -- the anomaly model ----------------------------------------------------------------------------------
    def set_scorer(self, scorer: AnomalyScorer | None) -> None:
        """Swap the anomaly model (model slots: promote / roll back). Threshold from config, else the model."""
        self.anomaly.set_scorer(scorer)

    @property
    def scorer(self) -> AnomalyScorer | None:
        return self.anomaly.scorer

    @property
    def anomaly_threshold(self) -> float:
        return self.anomaly.threshold

    @property
    def anomaly_batches(self) -> int:
        return self.anomaly.batches

    @property
    def anomaly_beds_scored(self) -> int:
        return self.anomaly.beds_scored

    def stats(self) -> dict[str, int]:
        """Counters for /metrics."""
        return {"samples": self.samples, "beds": len(self.beds), "alarms_raised": self.manager.raised_total,
                "alarms_open": self.manager.open_count, "sink_errors": self.sink_errors,
                "anomaly_batches": self.anomaly.batches, "anomaly_beds_scored": self.anomaly.beds_scored}

    # -- beds -----------------------------------------------------------------------------------------------
    def add_bed(self, b: BedConfig) -> None:
        self.registry.add(b)

    def forget_bed(self, bed: str) -> None:
        """The patient left: drop the bed's state and clear its alarms."""
        self.registry.forget(bed)

    def set_context(self, bed: str, *, on_oxygen: bool | None = None, scale2: bool | None = None,
                    consciousness: str | None = None) -> None:
        """Patient context from charting (or a replay file). Forces a NEWS2 recompute."""
        self.registry.set_context(bed, on_oxygen=on_oxygen, scale2=scale2, consciousness=consciousness)

    # -- Stage protocol: hot path ---------------------------------------------------------------------------
    def on_sample(self, s: Sample) -> None:
        self.samples += 1
        b = self.beds.get(s.bed)
        if b is None or (s.patient and s.patient != b.st.patient):
            b = self.registry.get(s.bed, s.patient)
        st = b.st
        sb = b.smart
        if sb is not None:
            t = s.recv_mono
            b.wall_offset = s.recv_wall - t
            valid = s.quality == _VALID
            a = AGE_INTERVALS * st.iv[HR]  # st.age_limit(HR, ECG_FRESH_S), inlined: asked for every sample
            ok = sb.sample(s.parameter, s.value if valid else math.nan, t,
                           t - st.t_valid[HR] <= (a if a > ECG_FRESH_S else ECG_FRESH_S))
            if not ok and valid and s.value == s.value:
                j = SLOT.get(s.parameter, -1)
                if j >= 0:  # an artifact: seen, but it never feeds a value, a score or an alarm
                    st.last_seen[j] = t
                    st.last_any = t
                return
        i = st.update(s)
        if i < 0:
            if s.quality != _VALID:  # only a flagged sample can start a technical condition (SENSOR_OFF)
                self.technical.invalid_sample(b, s)
            return
        if b.sensor_off:
            self.technical.sensor_back(b, i, s)
        if i == PR and s.recv_mono - st.t_valid[HR] <= st.age_limit(HR, ECG_FRESH_S):
            return  # ECG heart rate is present: its rules already run on it
        rules = b.prof.by_slot[i]
        if rules:
            evaluate_rules(self.manager, b, rules, s)

    def on_device_event(self, e: DeviceEvent) -> None:
        self.technical.on_device_event(self.registry.get(e.bed, ""), e)

    # -- periodic -------------------------------------------------------------------------------------------
    def tick(self, now_mono: float, now_wall: float) -> None:
        now = now_mono
        self.technical.confirm_pending(now)
        self.news2.run(now, now_wall)
        if self.anomaly.due(now):
            self.anomaly.run(now, now_wall)
        self.manager.tick(now)

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
        return scores(self.registry)

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """JSON-able view for the nurse page: beds with live values, trends, NEWS2; alarms by priority."""
        return snapshot(self.registry, self.manager, self.clock() if now is None else now, self.anomaly.threshold)

    def trends(self, bed: str, hours: float = 6.0, now: float | None = None) -> dict[str, Any] | None:
        """A bed's per-minute trends for the last ``hours`` (the nurse page's bed view), or None."""
        return bed_trends(self.registry, bed, self.clock() if now is None else now, hours)
