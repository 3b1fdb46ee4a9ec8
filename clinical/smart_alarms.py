"""The stage's smart-alarm part: one :class:`~clinical.alarms.smart.SmartBed` per bed whose profile has a
``smart`` policy, its conditions mapped onto the alarm manager with their reasons.

Per sample (O(1)): the policy sees every sample first and says whether it is clean; an artifact
never reaches the bed state (so NEWS2 and the anomaly model never see it either) and never becomes
a physiological alarm. Per bed visit of the sweep (about once a second): minutes close, a pending
NIBP is evaluated. Stale data ends the parameter's conditions.
"""

from __future__ import annotations

from clinical.alarms.manager import AlarmManager
from clinical.alarms.smart import SmartBed
from clinical.artifact import HR as A_HR
from clinical.artifact import RESP as A_RESP
from clinical.artifact import SPO2 as A_SPO2
from clinical.beds import Bed
from clinical.bedstate import HR, RESP, SPO2

STALE_CHANNEL = {HR: A_HR, SPO2: A_SPO2, RESP: A_RESP}


class SmartAlarms:
    def __init__(self, manager: AlarmManager) -> None:
        self.manager = manager

    def attach(self, b: Bed) -> None:
        """Give ``b`` the policy of its profile (or none), ending the conditions of a policy it loses."""
        p = b.prof.p.smart
        old = b.smart
        if old is not None and (p is None or old.p is not p):
            for i, on in enumerate(old.on):
                if on:
                    old.emit(i, False, b.st.last_any, None, "")
            b.smart = None
        if p is not None and b.smart is None:
            specs = b.prof.smart
            m = self.manager
            st = b.st

            def emit(i: int, on: bool, t: float, value: float | None, reason: str) -> None:
                m.update(st.bed, st.patient, specs[i], on, t, value=value, recv_mono=t, t_wall=t + b.wall_offset,
                         reason=reason)

            b.smart = SmartBed(p, emit, st.context.scale2)

    @staticmethod
    def stale(b: Bed, slot: int, now: float) -> None:
        sb = b.smart
        ch = STALE_CHANNEL.get(slot)
        if sb is not None and ch is not None:
            sb.stale(ch, now)
