"""Alarm conditions compiled from the config for the hot path: threshold rules per parameter slot,
the NEWS2 and anomaly condition specs of each profile, and the technical condition specs."""

from __future__ import annotations

from collections.abc import Callable

from clinical.alarms.manager import ConditionSpec
from clinical.alarms.model import Kind, Priority
from clinical.alarms.profiles import ClinicalConfig, Profile, ThresholdRule
from clinical.alarms.smart_conditions import CONDITIONS
from clinical.bedstate import HR, PR, SLOT, SLOTS

PRIO = {"high": Priority.HIGH, "medium": Priority.MEDIUM, "low": Priority.LOW}
LABELS = {"heart_rate": "HR", "spo2": "SpO2", "resp_rate": "resp rate", "nibp_sys": "NIBP sys",
          "nibp_dia": "NIBP dia", "temperature": "temperature"}


class Rule:
    __slots__ = ("clear", "high", "idx", "limit", "spec")

    def __init__(self, idx: int, rule: ThresholdRule, latch_high: bool) -> None:
        self.idx = idx
        self.high = rule.direction == "high"
        self.limit = rule.limit
        self.clear = rule.limit - rule.hysteresis if self.high else rule.limit + rule.hysteresis
        prio = PRIO[rule.priority]
        word = "high" if self.high else "low"
        self.spec = ConditionSpec(
            rule.condition, Kind.PHYSIOLOGICAL, "threshold", prio, rule.delay_s,
            latch_high and prio is Priority.HIGH, f"{LABELS[rule.parameter]} {word} (limit {rule.limit:g})",
            rule.parameter,
        )


class CompiledProfile:
    """A profile compiled for the hot path: rules per parameter slot, NEWS2 and technical specs."""

    def __init__(self, name: str, p: Profile, cfg: ClinicalConfig) -> None:
        self.name = name
        self.p = p
        self.rules = [Rule(i, r, cfg.latch_high) for i, r in enumerate(p.thresholds)]
        self.by_slot: list[tuple[Rule, ...]] = [
            tuple(r for r in self.rules if SLOT[p.thresholds[r.idx].parameter] == s) for s in range(len(SLOTS))
        ]
        self.by_slot[PR] = self.by_slot[HR]  # pulse rate stands in for heart rate without ECG
        n = p.news2
        lh = cfg.latch_high
        self.news2_high = ConditionSpec("news2_high", Kind.PHYSIOLOGICAL, "news2", Priority.HIGH, n.delay_s, lh,
                                        f"NEWS2 >= {n.high_at}: emergency response", None, n.clear_delay_s)
        self.news2_medium = ConditionSpec("news2_medium", Kind.PHYSIOLOGICAL, "news2", PRIO[n.medium_priority],
                                          n.delay_s,
                                          False, f"NEWS2 >= {n.medium_at}: urgent response", None,
                                          n.clear_delay_s)
        self.news2_three = ConditionSpec(
            "news2_single3", Kind.PHYSIOLOGICAL, "news2", PRIO.get(n.single_three, Priority.LOW), n.delay_s, False,
            "NEWS2: 3 in a single parameter, urgent ward review", None, n.clear_delay_s)
        self.smart: tuple[ConditionSpec, ...] = ()
        if p.smart is not None:
            self.smart = tuple(
                ConditionSpec(c.name, Kind.TECHNICAL if c.technical else Kind.PHYSIOLOGICAL, c.source,
                              Priority(c.priority), 0.0, lh and c.priority == 3 and not c.technical, c.message,
                              c.param)
                for c in CONDITIONS)
        a = cfg.anomaly
        self.anomaly = ConditionSpec("anomaly", Kind.PHYSIOLOGICAL, "anomaly", PRIO[a.priority], a.delay_s, False,
                                     "vitals anomaly model: deterioration pattern", None, a.clear_delay_s)


def technical_specs(cfg: ClinicalConfig) -> dict[str, Callable[[str], ConditionSpec]]:
    t = cfg.technical

    def mk(cond: str, delay: float, prio: str, msg: str) -> Callable[[str], ConditionSpec]:
        cache: dict[str, ConditionSpec] = {}

        def get(param: str) -> ConditionSpec:
            s = cache.get(param)
            if s is None:
                name = f"{cond}:{param}" if param else cond
                s = cache[param] = ConditionSpec(name, Kind.TECHNICAL, "device" if cond != "no_data" else "data",
                                                 PRIO[prio], delay, False, msg + (f" ({param})" if param else ""),
                                                 param or None)
            return s

        return get

    return {
        "sensor_off": mk("sensor_off", t.sensor_off_delay_s, t.sensor_off_priority, "sensor off"),
        "disconnected": mk("disconnected", t.disconnected_delay_s, t.disconnected_priority, "device disconnected"),
        "silent": mk("silent", t.disconnected_delay_s, t.disconnected_priority, "device not sending"),
        "probe_fault": mk("probe_fault", t.signal_delay_s, t.signal_priority, "probe fault"),
        "low_signal": mk("low_signal", t.signal_delay_s, t.signal_priority, "low signal quality"),
        "no_data": mk("no_data", 0.0, t.stale_priority, "no valid data"),
        "no_data_long": mk("no_data_long", 0.0, "medium", f"no valid data for {t.stale_medium_after_s or 0:g} s"),
    }
