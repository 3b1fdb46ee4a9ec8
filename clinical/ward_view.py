"""Read-only views of the ward for the nurse page and the summaries: beds with live values (each with
its active limits and whether it is beyond one), trends, NEWS2 with its response band in words, the
anomaly score with its alarm level; each bed's highest open unacknowledged alarm; open alarms by
priority; a bed's per-minute trends for the last hours (:func:`bed_trends`)."""

from __future__ import annotations

import math
from typing import Any

from clinical.alarms.manager import AlarmManager
from clinical.alarms.model import State
from clinical.beds import BedRegistry
from clinical.bedstate import PR, SLOTS, trend
from clinical.news2 import News2
from clinical.technical import CONTINUOUS
from clinical.ward_words import anomaly_words, limits, news2_words, rule_limits, smart_limits

ANOMALY_TREND_POINTS = 30  # scores on the tile's small trend (about one a minute)


def scores(registry: BedRegistry) -> dict[str, tuple[int | None, float | None]]:
    """Per bed: (NEWS2 total or None, anomaly score or None) as last computed (for summaries)."""
    out: dict[str, tuple[int | None, float | None]] = {}
    for bed, b in registry.beds.items():
        n = b.st.news2
        out[bed] = (n.total if isinstance(n, News2) else None, None if math.isnan(b.anomaly) else b.anomaly)
    return out


def alarm_levels(manager: AlarmManager) -> dict[str, tuple[str | None, int]]:
    """Per bed: the priority of its highest open alarm nobody acknowledged yet (None if none), and how
    many open alarms are acknowledged. The tile's colour follows the first, never an acknowledged one."""
    out: dict[str, tuple[str | None, int]] = {}
    best: dict[str, int] = {}
    for a in manager.open_alarms():
        level, acked = out.get(a.bed, (None, 0))
        if a.state is State.ACKNOWLEDGED:
            out[a.bed] = (level, acked + 1)
        elif a.priority > best.get(a.bed, -1):
            best[a.bed] = a.priority
            out[a.bed] = (a.priority.label, acked)
    return out


def snapshot(registry: BedRegistry, manager: AlarmManager, now: float,
             anomaly_threshold: float = math.nan) -> dict[str, Any]:
    """JSON-able view for the nurse page: beds with live values, trends, NEWS2; alarms by priority."""
    beds = []
    levels = alarm_levels(manager)
    for bed_id in sorted(registry.beds):
        b = registry.beds[bed_id]
        st = b.st
        smart = b.prof.p.smart
        smart_lims = smart_limits(smart, st.context.scale2) if smart is not None and smart.enabled else {}
        values: dict[str, Any] = {}
        for i, name in enumerate(SLOTS):
            if st.t_valid[i] == -math.inf:
                continue
            age = now - st.t_valid[i]
            values[name] = {"v": round(st.value[i], 1), "age": round(age, 1), "trend": trend(st, i),
                            "stale": age > (b.prof.p.fresh_s if i in CONTINUOUS or i == PR else 4 * 3600),
                            **limits(rule_limits(b.prof.by_slot[i]) + smart_lims.get(name, []), st.value[i])}
        n = st.news2
        level, acked = levels.get(bed_id, (None, 0))
        beds.append({
            "bed": bed_id, "profile": st.profile, "values": values,
            "news2": n.total if isinstance(n, News2) else None,
            "news2_response": n.response.name.lower() if isinstance(n, News2) else None,
            "news2_missing": list(n.missing) if isinstance(n, News2) else [],
            "news2_words": news2_words(n),
            "anomaly": None if math.isnan(b.anomaly) else round(b.anomaly, 3),
            "anomaly_threshold": None if math.isnan(anomaly_threshold) else round(anomaly_threshold, 3),
            "anomaly_trend": st.history.recent_scores(ANOMALY_TREND_POINTS),
            "anomaly_words": anomaly_words(b.anomaly, anomaly_threshold, b.anomaly_on),
            "alarm": level, "alarms_acknowledged": acked,
            "on_oxygen": st.context.on_oxygen, "scale2": st.context.scale2,
            "consciousness": st.context.consciousness,
        })
    return {"beds": beds, "alarms": [a.to_json() for a in manager.sorted_open()]}


def bed_trends(registry: BedRegistry, bed: str, now: float, hours: float) -> dict[str, Any] | None:
    """One bed's per-minute trends for the last ``hours`` from the gateway's own memory, or None."""
    b = registry.beds.get(bed)
    if b is None:
        return None
    return {"bed": bed, "profile": b.st.profile, **b.st.history.series(now, hours)}
