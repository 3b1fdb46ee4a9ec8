"""Threshold rules on the hot path: one valid value against the rules of its parameter slot.

Each rule has a limit and a clear level (hysteresis); a rule that is on, or turns on, updates the
alarm manager, which owns the condition delay, latching and priorities.
"""

from __future__ import annotations

from collections.abc import Sequence

from clinical.alarms.conditions import Rule
from clinical.alarms.manager import AlarmManager
from clinical.beds import Bed
from clinical.sample import Sample


def evaluate_rules(manager: AlarmManager, b: Bed, rules: Sequence[Rule], s: Sample) -> None:
    """Evaluate ``rules`` (the bed profile's rules for the sample's slot) on the valid sample ``s``."""
    v = s.value
    on_list = b.rule_on
    st = b.st
    for r in rules:
        was = on_list[r.idx]
        if r.high:
            on = v >= r.limit or (was and v > r.clear)
        else:
            on = v <= r.limit or (was and v < r.clear)
        if on or was:
            on_list[r.idx] = on
            manager.update(st.bed, st.patient, r.spec, on, s.recv_mono, value=v, recv_mono=s.recv_mono,
                           t_wall=s.recv_wall)


def end_rule(manager: AlarmManager, b: Bed, r: Rule, now: float) -> None:
    """The rule's condition ended without a value (stale data, profile switch)."""
    b.rule_on[r.idx] = False
    manager.update(b.st.bed, b.st.patient, r.spec, False, now)
