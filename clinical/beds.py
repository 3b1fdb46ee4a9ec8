"""The bed registry: one entry per bed (its state, compiled alarm profile and alarm bookkeeping).

Beds come from the config or appear with their first sample (default profile). A bed's profile
follows its patient context (SpO2 scale 2 -> the scale-2 profile) unless the config names one; on a
profile switch the old profile's threshold conditions end before the new rules evaluate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from clinical.alarms.conditions import CompiledProfile
from clinical.alarms.manager import ConditionSpec
from clinical.alarms.profiles import BedConfig, ClinicalConfig
from clinical.alarms.smart import SmartBed
from clinical.bedstate import BedState, PatientContext

CONSCIOUSNESS = ("A", "C", "V", "P", "U")


class Bed:
    """A bed's state and the alarm bookkeeping the stage keeps beside it."""

    __slots__ = ("anomaly", "anomaly_on", "anomaly_peak", "anomaly_since", "devices_down", "explicit_profile",
                 "news2_at", "pending_tech", "prof", "rule_on", "sensor_off", "smart", "st", "stale_on", "wall_offset")

    def __init__(self, st: BedState, prof: CompiledProfile) -> None:
        self.st = st
        self.prof = prof
        self.rule_on = [False] * len(prof.rules)
        self.sensor_off = 0  # bit mask of slots whose last sample said SENSOR_OFF
        self.devices_down: set[str] = set()
        self.pending_tech: dict[str, tuple[ConditionSpec, float]] = {}  # event conditions awaiting their delay
        self.anomaly = math.nan
        self.anomaly_on = False
        self.anomaly_since = math.nan  # when the score last reached the threshold (the alarm's delay runs from it)
        self.anomaly_peak = math.nan  # the highest score since
        self.explicit_profile = False
        self.news2_at = -math.inf
        self.smart: SmartBed | None = None  # the profile's smart policy state (clinical/smart_alarms.py)
        self.wall_offset = 0.0  # recv_wall - recv_mono of the latest sample
        self.stale_on = 0  # bit mask of slots the stale-data check is following (clinical/technical.py)


EndCondition = Callable[[Bed, ConditionSpec], object]


class BedRegistry:
    """Beds by id; ``end`` ends one threshold condition of a bed (on a profile switch or a discharge)."""

    def __init__(self, cfg: ClinicalConfig, end: EndCondition, forget: Callable[[str], None],
                 attach: Callable[[Bed], None] | None = None) -> None:
        self._attach = attach
        self.cfg = cfg
        self.profiles = {n: CompiledProfile(n, p, cfg) for n, p in cfg.all_profiles().items()}
        self.beds: dict[str, Bed] = {}
        self._list: list[Bed] | None = None
        self._end = end
        self._forget = forget
        self.pending: set[Bed] = set()  # beds with technical conditions awaiting their delay

    def __len__(self) -> int:
        return len(self.beds)

    def as_list(self) -> list[Bed]:
        """All beds in a list kept between changes (the sweeps walk it by index)."""
        if self._list is None:
            self._list = list(self.beds.values())
        return self._list

    def add(self, b: BedConfig) -> None:
        ctx = PatientContext(b.on_oxygen, b.spo2_scale2, b.consciousness)
        name = b.profile or (self.cfg.scale2_profile if b.spo2_scale2 else None) or self.cfg.default_profile
        prof = self.profiles[name]
        bed = self.beds[b.id] = Bed(BedState(b.id, prof.name, b.patient, ctx), prof)
        self._list = None
        bed.explicit_profile = b.profile is not None
        if self._attach is not None:
            self._attach(bed)

    def get(self, bed: str, patient: str) -> Bed:
        """The bed, created with the default profile when new; a device-named patient updates it."""
        b = self.beds.get(bed)
        if b is None:
            prof = self.profiles[self.cfg.default_profile]
            b = self.beds[bed] = Bed(BedState(bed, prof.name, patient), prof)
            self._list = None
            if self._attach is not None:
                self._attach(b)
        elif patient and patient != b.st.patient:  # set, or changed by the device (HL7 PID-3: a new admission)
            b.st.patient = patient
        return b

    def forget(self, bed: str) -> None:
        """The patient left: drop the bed's state and clear its alarms."""
        b = self.beds.pop(bed, None)
        if b is not None:
            self._list = None
            self.pending.discard(b)
            self._forget(bed)

    def set_context(self, bed: str, *, on_oxygen: bool | None = None, scale2: bool | None = None,
                    consciousness: str | None = None) -> None:
        """Patient context from charting (or a replay file). Forces a NEWS2 recompute."""
        b = self.get(bed, "")
        c = b.st.context
        if on_oxygen is not None:
            c.on_oxygen = on_oxygen
        if scale2 is not None:
            c.scale2 = scale2
            if not b.explicit_profile:
                name = (self.cfg.scale2_profile if scale2 else None) or self.cfg.default_profile
                if name != b.prof.name:
                    self.switch_profile(b, self.profiles[name])
            if b.smart is not None:
                b.smart.set_scale2(scale2)
        if consciousness is not None:
            if consciousness not in CONSCIOUSNESS:
                raise ValueError(f"consciousness {consciousness!r} is not one of A, C, V, P, U")
            c.consciousness = consciousness
        b.st.dirty = True

    def switch_profile(self, b: Bed, prof: CompiledProfile) -> None:
        """End the old profile's threshold conditions, then evaluate with the new rules."""
        for r in b.prof.rules:
            if b.rule_on[r.idx]:
                self._end(b, r.spec)
        b.prof = prof
        b.st.profile = prof.name
        b.rule_on = [False] * len(prof.rules)
        if self._attach is not None:
            self._attach(b)
