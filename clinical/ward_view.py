"""Read-only views of the ward for the nurse page and the summaries: beds with live values, trends,
NEWS2 and its response band, anomaly scores; open alarms by priority."""

from __future__ import annotations

import math
from typing import Any

from clinical.alarms.manager import AlarmManager
from clinical.beds import BedRegistry
from clinical.bedstate import PR, SLOTS, trend
from clinical.news2 import News2
from clinical.technical import CONTINUOUS


def scores(registry: BedRegistry) -> dict[str, tuple[int | None, float | None]]:
    """Per bed: (NEWS2 total or None, anomaly score or None) as last computed (for summaries)."""
    out: dict[str, tuple[int | None, float | None]] = {}
    for bed, b in registry.beds.items():
        n = b.st.news2
        out[bed] = (n.total if isinstance(n, News2) else None, None if math.isnan(b.anomaly) else b.anomaly)
    return out


def snapshot(registry: BedRegistry, manager: AlarmManager, now: float) -> dict[str, Any]:
    """JSON-able view for the nurse page: beds with live values, trends, NEWS2; alarms by priority."""
    beds = []
    for bed_id in sorted(registry.beds):
        b = registry.beds[bed_id]
        st = b.st
        values: dict[str, Any] = {}
        for i, name in enumerate(SLOTS):
            if st.t_valid[i] == -math.inf:
                continue
            age = now - st.t_valid[i]
            values[name] = {"v": round(st.value[i], 1), "age": round(age, 1), "trend": trend(st, i),
                            "stale": age > (b.prof.p.fresh_s if i in CONTINUOUS or i == PR else 4 * 3600)}
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
    return {"beds": beds, "alarms": [a.to_json() for a in manager.sorted_open()]}
