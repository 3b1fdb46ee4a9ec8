"""What the FHIR export reads from InfluxDB (the schema of docs/uplink-ingest.md)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from cloud.influx import InfluxError, InfluxWriter

SINCE = re.compile(r"[1-9][0-9]{0,5}[smhd]")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# An alarm's state changes are stored at its raise time: alarms are read over at least this long, so that
# a state change after a short export window (acknowledged, cleared) still reaches its DetectedIssue.
ALARM_LOOKBACK = "24h"


@dataclass(frozen=True, slots=True)
class VitalRow:
    site: str
    gateway: str
    bed: str
    patient: str
    param: str
    t_ns: int  # interval start
    interval_s: float
    mean: float
    min: float | None
    max: float | None
    count: int


@dataclass(frozen=True, slots=True)
class ScoreRow:
    site: str
    gateway: str
    bed: str
    patient: str
    t_ns: int
    news2: int | None
    anomaly: float | None


@dataclass(frozen=True, slots=True)
class AlarmChange:
    state: str
    changed_ns: int
    by: str | None


@dataclass(slots=True)
class AlarmRow:
    """One alarm (all its state changes in the window), keyed by (gateway, alarm_id)."""

    site: str
    gateway: str
    alarm_id: str
    bed: str
    patient: str
    t_ns: int  # raised
    priority: str
    kind: str
    source: str
    condition: str
    param: str | None
    value: float | None
    score: float | None
    changes: list[AlarmChange] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class GatewayRow:
    site: str
    gateway: str
    software: str
    models: dict[str, str]


@dataclass(slots=True)
class ExportData:
    vitals: list[VitalRow] = field(default_factory=list)
    scores: list[ScoreRow] = field(default_factory=list)
    alarms: list[AlarmRow] = field(default_factory=list)
    gateways: dict[str, GatewayRow] = field(default_factory=dict)
    skipped_no_patient: int = 0


def seconds(since: str) -> int:
    return int(since[:-1]) * _UNIT_S[since[-1]]


def check_since(since: str) -> str:
    """``--since`` as an InfluxQL duration literal (checked: it is spliced into the query)."""
    if not SINCE.fullmatch(since):
        raise ValueError(f"since must look like 30m, 1h, 7d (got {since[:20]!r})")
    return since


async def _rows(influx: InfluxWriter, q: str) -> list[dict[str, Any]]:
    try:
        return await influx.rows(q)
    except InfluxError as exc:
        if "database not found" in str(exc):
            return []
        raise


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


async def read_export_data(influx: InfluxWriter, since: str) -> ExportData:
    since = check_since(since)
    data = ExportData()
    rows = await _rows(influx, 'SELECT "mean", "min", "max", "count", "interval_s" FROM "vitals" '
                               f'WHERE time > now() - {since} GROUP BY "site", "gateway", "bed", "patient", "param"')
    for r in rows:
        mean = _float(r.get("mean"))
        if mean is None or not r.get("count"):
            continue  # nothing valid was measured in that interval
        if not r.get("patient"):
            data.skipped_no_patient += 1
            continue
        data.vitals.append(VitalRow(r.get("site", ""), r.get("gateway", ""), r.get("bed", ""), r["patient"],
                                    r.get("param", ""), int(r["time"]), _float(r.get("interval_s")) or 60.0, mean,
                                    _float(r.get("min")), _float(r.get("max")), int(r["count"])))
    rows = await _rows(influx, 'SELECT "news2", "anomaly" FROM "scores" '
                               f'WHERE time > now() - {since} GROUP BY "site", "gateway", "bed", "patient"')
    for r in rows:
        if not r.get("patient"):
            data.skipped_no_patient += 1
            continue
        news2 = r.get("news2")
        data.scores.append(ScoreRow(r.get("site", ""), r.get("gateway", ""), r.get("bed", ""), r["patient"],
                                    int(r["time"]), int(news2) if isinstance(news2, int) else None,
                                    _float(r.get("anomaly"))))
    alarm_since = since if seconds(since) >= seconds(ALARM_LOOKBACK) else ALARM_LOOKBACK
    rows = await _rows(influx, 'SELECT "condition", "score", "value", "by", "changed_ns" FROM "alarms" '
                               f'WHERE time > now() - {alarm_since} GROUP BY "site", "gateway", "alarm_id", "bed", '
                               '"patient", "state", "priority", "kind", "source", "param"')
    alarms: dict[tuple[str, str], AlarmRow] = {}
    for r in sorted(rows, key=lambda r: int(r.get("changed_ns") or r["time"])):
        if not r.get("patient"):
            data.skipped_no_patient += 1
            continue
        key = (r.get("gateway", ""), r.get("alarm_id", ""))
        a = alarms.get(key)
        if a is None:
            a = alarms[key] = AlarmRow(r.get("site", ""), key[0], key[1], r.get("bed", ""), r["patient"],
                                       int(r["time"]), r.get("priority", "low"), r.get("kind", ""),
                                       r.get("source", ""), str(r.get("condition") or ""), r.get("param") or None,
                                       _float(r.get("value")), _float(r.get("score")))
        a.priority = r.get("priority", a.priority)  # an escalation raises it
        a.changes.append(AlarmChange(r.get("state", ""), int(r.get("changed_ns") or r["time"]), r.get("by") or None))
    data.alarms = list(alarms.values())
    rows = await _rows(influx, 'SELECT "software", "models" FROM "status" '
                               'GROUP BY "site", "gateway" ORDER BY time DESC LIMIT 1')
    for r in rows:
        try:
            models = json.loads(r.get("models") or "{}")
        except ValueError:
            models = {}
        gw = r.get("gateway", "")
        data.gateways[gw] = GatewayRow(r.get("site", ""), gw, str(r.get("software") or ""),
                                       {str(k): str(v) for k, v in models.items()} if isinstance(models, dict) else {})
    return data
