"""Staged rollout: who gets a candidate when, and what a shadow report must show (pure).

Stages are sets of gateways. The first is the canary: the gateways named, or those whose stable hash
(:func:`stable_fraction`, SHA-256 of the gateway id) falls below the first percentage; each later stage adds
the gateways below its percentage; the last stage is the whole fleet. A gateway's place never depends on
the run, the candidate or the order the fleet is listed in, so "10 %" is always the same 10 %.

:func:`judge` reads one gateway's latest shadow report against :class:`Criteria`; any reason it returns
rolls the candidate back everywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from wire.messages import ShadowReport


def stable_fraction(gateway: str) -> float:
    """The gateway's place in [0, 1): the first 52 bits of SHA-256 of its id."""
    return int(hashlib.sha256(gateway.encode()).hexdigest()[:13], 16) / float(1 << 52)


def plan_stages(gateways: list[str], canary: list[str] | None = None,
                percents: list[float] | None = None) -> list[list[str]]:
    """Stages of gateway ids, each non-empty and disjoint, together the whole fleet (sorted within a stage).

    ``percents``: the canary's percentage (unless ``canary`` names it) and those of later stages; default
    10 % and 50 %, or none after a named canary (canary, then the fleet)."""
    fleet = sorted(set(gateways))
    if not fleet:
        raise ValueError("no gateways to roll out to")
    unknown = sorted(set(canary or ()) - set(fleet))
    if unknown:
        raise ValueError(f"canary gateway(s) not in the fleet: {', '.join(unknown)}")
    if percents is None:
        percents = [] if canary else [10.0, 50.0]
    cuts = sorted(p for p in percents if 0 < p < 100)
    stages: list[list[str]] = []
    done: set[str] = set()
    if canary:
        stages.append(sorted(set(canary)))
        done |= set(canary)
    elif cuts:
        first = [g for g in fleet if stable_fraction(g) < cuts[0] / 100] or [min(fleet, key=stable_fraction)]
        stages.append(first)
        done |= set(first)
        cuts = cuts[1:]
    for p in [*cuts, 100.0]:
        stage = [g for g in fleet if g not in done and (p >= 100 or stable_fraction(g) < p / 100)]
        if stage:
            stages.append(stage)
            done |= set(stage)
    return stages


@dataclass(frozen=True)
class Criteria:
    dwell_s: float = 300.0  # each stage shadows at least this long before the next one starts
    report_timeout_s: float = 120.0  # a gateway of a started stage silent this long: rolled back
    min_bed_windows: int = 10  # a stage counts only when each of its gateways compared this many
    min_agreement: float = 0.9
    max_alarm_ratio: float = 1.5  # candidate alarm decisions <= ratio x active's + slack
    alarm_slack: int = 2
    max_invoke_ms: float = 50.0  # the candidate's slowest batch

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def judge(r: ShadowReport, c: Criteria) -> str | None:
    """Why this report rolls the candidate back, or None when it holds (so far)."""
    if r.state in ("rolled_back", "rejected"):
        return f"{r.gw}: {r.state} on the gateway ({r.reason or 'no reason given'})"
    if r.errors:
        return f"{r.gw}: the candidate failed {r.errors} time(s) in shadow ({r.reason or 'error'})"
    if r.invalid:
        return f"{r.gw}: {r.invalid} invalid candidate outputs"
    if r.bed_windows >= c.min_bed_windows:
        if r.agreement < c.min_agreement:
            return f"{r.gw}: agreement {r.agreement:.3f} < {c.min_agreement} over {r.bed_windows} bed-windows"
        if r.cand_alarms > c.max_alarm_ratio * r.active_alarms + c.alarm_slack:
            return (f"{r.gw}: regression, the candidate would have alarmed on {r.cand_alarms} bed-windows against "
                    f"{r.active_alarms} for the active model")
    if r.invoke_ms_max > c.max_invoke_ms:
        return f"{r.gw}: candidate invoke {r.invoke_ms_max:.1f} ms > {c.max_invoke_ms} ms"
    return None


def holds(r: ShadowReport | None, c: Criteria) -> bool:
    """A report that lets its stage move on: enough comparisons and nothing wrong."""
    return r is not None and r.state == "shadow" and r.bed_windows >= c.min_bed_windows and judge(r, c) is None
