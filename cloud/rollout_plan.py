"""Staged rollout: who gets a candidate when, and what a shadow report must show (pure).

Stages are sets of gateways. The first is the canary: the gateways named, or those whose stable hash
(:func:`stable_fraction`, SHA-256 of the gateway id) falls below the first percentage; each later stage adds
the gateways below its percentage; the last stage is the whole fleet. A gateway's place never depends on
the run, the candidate or the order the fleet is listed in, so "10 %" is always the same 10 %.

:func:`judge` reads one gateway's latest shadow report against :class:`Criteria`; any reason it returns
rolls the candidate back everywhere. A regression is a difference, in either direction, that a one-sided
sign test at ``alpha`` does not put down to chance:

- more alarms: beyond ``max_alarm_ratio`` x the active model's alarm decisions + slack, AND on beds the active
  model never alarmed on in the shadow period. A candidate that warns earlier on a patient both models alarm
  for decides differently on many bed-windows, and that is the point of a better model, not a regression.
- silence where the active model alarmed: on bed-windows (a later warning is a worse one) beyond
  ``miss_slack``. A candidate that stops alarming keeps a high agreement on a quiet ward;
  this is what catches it.
"""

from __future__ import annotations

import hashlib
import math
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
    miss_slack: int = 2  # bed-windows the active model alarmed on and the candidate did not, beyond the reverse
    alpha: float = 0.05  # one-sided sign test on the bed-windows where the two decided differently
    max_invoke_ms_p50: float = 50.0  # the candidate's median batch (the shipped 2.x: about 0.3 ms)
    max_invoke_ms: float = 250.0  # its slowest batch: a stall of the gateway's scoring sweep

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
        only_cand, only_active = discordant(r)
        beds = bed_figures(r)
        if r.cand_alarms > c.max_alarm_ratio * r.active_alarms + c.alarm_slack:
            # more alarms: on beds the active model never alarmed on (an earlier warning on a bed both alarm on
            # is no extra alarm); a gateway that does not report beds is judged on its bed-windows
            k, other, unit = (beds[0], beds[1], "beds") if beds else (only_cand, only_active, "bed-windows")
            if k > other and sign_p(k, k + other) < c.alpha:
                return (f"{r.gw}: regression, the candidate would have alarmed on {r.cand_alarms} bed-windows "
                        f"against {r.active_alarms} for the active model, on {k} {unit} the active model did not "
                        f"alarm on ({other} the other way)")
        # silence where the active model alarmed: a missed or a later warning (a bed the candidate is silent
        # on costs at least one bed-window alone, so whole beds are covered too)
        if only_active - only_cand > c.miss_slack and sign_p(only_active, only_cand + only_active) < c.alpha:
            return (f"{r.gw}: regression, the candidate would have stayed silent on {only_active} bed-windows "
                    f"the active model alarmed on (and alarmed alone on {only_cand})")
    if r.invoke_ms_p50 > c.max_invoke_ms_p50:
        return f"{r.gw}: candidate invoke {r.invoke_ms_p50:.1f} ms per batch (median) > {c.max_invoke_ms_p50} ms"
    if r.invoke_ms_max > c.max_invoke_ms:  # one slow batch of a loaded machine is not a slow model; a stall is
        return f"{r.gw}: candidate's slowest invoke {r.invoke_ms_max:.1f} ms > {c.max_invoke_ms} ms"
    return None


def discordant(r: ShadowReport) -> tuple[int, int]:
    """Bed-windows only the candidate alarmed on, and only the active model, derived from the report:
    they differ on ``bed_windows - agreed`` and their difference is ``cand_alarms - active_alarms``."""
    differ = r.bed_windows - round(r.agreement * r.bed_windows)
    diff = r.cand_alarms - r.active_alarms
    return max(0, (differ + diff) // 2), max(0, (differ - diff) // 2)


def bed_figures(r: ShadowReport) -> tuple[int, int] | None:
    """Beds only the candidate alarmed on, and only the active model, over the shadow period; None for a
    gateway that does not report beds (it alarmed on bed-windows but names no bed)."""
    if (r.cand_alarms and not r.cand_beds) or (r.active_alarms and not r.active_beds):
        return None
    return r.cand_beds - r.both_beds, r.active_beds - r.both_beds


def sign_p(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2): how surprising k of n discordant windows on one side would be if
    the two models were equally likely to alarm alone. Windows of one bed are correlated, so the p-value
    is, if anything, too small: the test leans towards rolling back."""
    if k <= 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0 ** n


def holds(r: ShadowReport | None, c: Criteria) -> bool:
    """A report that lets its stage move on: enough comparisons and nothing wrong."""
    return r is not None and r.state == "shadow" and r.bed_windows >= c.min_bed_windows and judge(r, c) is None
