"""Technical conditions: sensor off, device disconnected or silent, probe faults, low signal, no data.

They come from samples' quality flags (SENSOR_OFF, keyed by the probe's device: an oximeter's SpO2 and
pulse rate share one probe, so one alarm), from DeviceEvents of transports and codecs, and from the
stale-data check of the sweeps. A condition with a delay waits in ``Bed.pending_tech`` until tick()
confirms it. They never feed a clinical score.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from clinical.alarms.conditions import technical_specs
from clinical.alarms.manager import AlarmManager, ConditionSpec
from clinical.alarms.profiles import ClinicalConfig
from clinical.beds import Bed, BedRegistry
from clinical.bedstate import AGE_INTERVALS, HR, PR, RESP, SLOT, SLOTS, SPO2
from clinical.rules import end_rule
from clinical.sample import DeviceEvent, Quality, Sample
from clinical.smart_alarms import SmartAlarms

CONTINUOUS = (HR, SPO2, RESP)
_NEVER = -math.inf  # t_valid of a slot that never had a valid value


class TechnicalConditions:
    def __init__(self, cfg: ClinicalConfig, manager: AlarmManager, registry: BedRegistry) -> None:
        self.specs: dict[str, Callable[[str], ConditionSpec]] = technical_specs(cfg)
        self.manager = manager
        self.registry = registry
        self.stale_after_s = cfg.technical.stale_after_s
        long_s = cfg.technical.stale_medium_after_s
        self.stale_long_s = math.inf if long_s is None else long_s

    def update(self, b: Bed, cond: str, param: str, active: bool, now: float, wall: float) -> None:
        spec = self.specs[cond](param)
        m = self.manager
        m.update(b.st.bed, b.st.patient, spec, active, now, recv_mono=now, t_wall=wall)
        if active and spec.delay_s > 0 and m.get_alarm(b.st.bed, spec.name) is None:
            b.pending_tech[spec.name] = (spec, wall - now)  # confirmed from tick() once its delay ran out
            self.registry.pending.add(b)
        else:
            b.pending_tech.pop(spec.name, None)

    # -- from samples ---------------------------------------------------------------------------------------
    def invalid_sample(self, b: Bed, s: Sample) -> None:
        """A sample that updated no value: a SENSOR_OFF flag starts the probe's condition (on the transition)."""
        j = SLOT.get(s.parameter, -1)
        if j >= 0 and s.quality & Quality.SENSOR_OFF and not b.sensor_off & (1 << j):
            b.sensor_off |= 1 << j
            self.update(b, "sensor_off", s.device or s.parameter, True, s.recv_mono, s.recv_wall)

    def sensor_back(self, b: Bed, i: int, s: Sample) -> None:
        """A valid value on slot ``i``: the probe is back if its sensor was off."""
        if b.sensor_off & (1 << i):
            b.sensor_off &= ~(1 << i)
            self.update(b, "sensor_off", s.device or s.parameter, False, s.recv_mono, s.recv_wall)

    # -- from transports ------------------------------------------------------------------------------------
    def on_device_event(self, b: Bed, e: DeviceEvent) -> None:
        cond = e.condition
        if cond == "connected":
            cond, active = "disconnected", not e.active
        else:
            active = e.active
        if cond not in self.specs:
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
        self.update(b, cond, param, active, e.recv_mono, e.recv_wall)

    # -- periodic -------------------------------------------------------------------------------------------
    def confirm_pending(self, now: float) -> None:
        """Raise the delayed conditions whose delay ran out (the manager decides), forget ended ones."""
        pending = self.registry.pending
        if not pending:
            return
        m = self.manager
        for b in list(pending):
            for name, (spec, offset) in list(b.pending_tech.items()):
                m.update(b.st.bed, b.st.patient, spec, True, now, recv_mono=now, t_wall=now + offset)
                if not m.is_on(b.st.bed, name) or m.get_alarm(b.st.bed, name) is not None:
                    del b.pending_tech[name]
            if not b.pending_tech:
                pending.discard(b)

    def stale(self, b: Bed, now: float, wall: float) -> None:
        """No valid HR/SpO2/resp for stale_after_s on a bed that had them: technical; physiological ones end."""
        st = b.st
        t_valid, iv = st.t_valid, st.iv
        fresh_p, stale_p = b.prof.p.fresh_s, self.stale_after_s
        for i in CONTINUOUS:
            t = t_valid[i]
            if t == _NEVER:
                continue
            # in recorded time: at least 2.5 sampling intervals (a record exported once a minute is not stale
            # after 30 s); st.age_limit(i, fresh_p) and (i, stale_p), inlined (each bed, each tick)
            a = AGE_INTERVALS * iv[i]
            fresh_s = a if a > fresh_p else fresh_p
            stale_s = a if a > stale_p else stale_p
            watch = fresh_s if fresh_s < stale_s else stale_s
            if i == HR and now - t_valid[PR] <= stale_s and t_valid[PR] > t:
                t = t_valid[PR]
            age = now - t
            bit = 1 << i
            if age <= watch and not b.stale_on & bit:
                continue  # fresh, and nothing of this check is on: the common case
            m = self.manager
            if age > watch:
                b.stale_on |= bit
            else:
                b.stale_on &= ~bit
            if age > fresh_s:
                for r in b.prof.by_slot[i]:
                    if b.rule_on[r.idx]:
                        end_rule(m, b, r, now)
                if b.smart is not None:
                    SmartAlarms.stale(b, i, now)
            stale = age > stale_s and not b.devices_down
            spec = self.specs["no_data"](SLOTS[i])
            if stale or m.is_on(st.bed, spec.name):
                m.update(st.bed, st.patient, spec, stale, now, recv_mono=now, t_wall=wall)
            long = stale and age > self.stale_long_s
            spec = self.specs["no_data_long"](SLOTS[i])
            if long or m.is_on(st.bed, spec.name):
                m.update(st.bed, st.patient, spec, long, now, recv_mono=now, t_wall=wall)
