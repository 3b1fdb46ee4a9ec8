"""Writes the PulseGate Grafana dashboards (dashboards/*.json) from the definitions below.

    python examples/grafana/generate.py      # rewrite the JSON files

Edit this file, not the JSON: tests/test_grafana.py checks the JSON files are what this
produces, and runs every panel's InfluxQL against a real influxd holding demo data.
Queries follow docs/uplink-ingest.md (InfluxDB schema); the datasource uid is that of
provisioning/datasources/pulsegate.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
INFLUX = {"type": "influxdb", "uid": "pulsegate-influx"}
PROM = {"type": "prometheus", "uid": "pulsegate-prometheus"}
EXPR = {"type": "__expr__", "uid": "__expr__"}
GW = '"gateway" =~ /^$gateway$/'
UNITS = {"heart_rate": "bpm", "pulse_rate": "bpm", "resp_rate": "/min", "spo2": "percent", "temperature": "celsius",
         "nibp_sys": "mmHg", "nibp_dia": "mmHg", "nibp_mean": "mmHg"}


def var(name: str, query: str, label: str, include_all: bool = True, multi: bool = True) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": INFLUX, "query": query, "refresh": 2,
            "includeAll": include_all, "multi": multi, "sort": 1, "current": {}, "options": [], "regex": ""}


def gateway_var() -> dict[str, Any]:
    return var("gateway", 'SHOW TAG VALUES FROM "status" WITH KEY = "gateway"', "gateway")


def target(query: str, ref: str = "A", fmt: str = "time_series", alias: str = "") -> dict[str, Any]:
    t: dict[str, Any] = {"refId": ref, "datasource": INFLUX, "query": query, "rawQuery": True, "resultFormat": fmt}
    if alias:
        t["alias"] = alias
    return t


class Board:
    def __init__(self, uid: str, title: str, description: str, variables: list[dict[str, Any]],
                 time_from: str = "now-6h", annotations: list[dict[str, Any]] | None = None) -> None:
        self.d: dict[str, Any] = {
            "uid": uid, "title": title, "description": description, "tags": ["pulsegate"], "editable": True,
            "schemaVersion": 39, "version": 1, "refresh": "30s", "timezone": "browser",
            "time": {"from": time_from, "to": "now"}, "templating": {"list": variables},
            "annotations": {"list": annotations or []}, "panels": [],
        }
        self.x = self.y = 0

    def panel(self, kind: str, title: str, targets: list[dict[str, Any]], w: int = 12, h: int = 8,
              unit: str = "", description: str = "", options: dict[str, Any] | None = None,
              transformations: list[dict[str, Any]] | None = None, datasource: dict[str, str] = INFLUX,
              thresholds: list[tuple[float | None, str]] | None = None) -> None:
        if self.x + w > 24:
            self.x, self.y = 0, self.y + h
        defaults: dict[str, Any] = {"unit": unit} if unit else {}
        if thresholds:
            defaults["thresholds"] = {"mode": "absolute",
                                      "steps": [{"value": v, "color": c} for v, c in thresholds]}
        p: dict[str, Any] = {"id": len(self.d["panels"]) + 1, "type": kind, "title": title, "datasource": datasource,
                             "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h}, "targets": targets,
                             "fieldConfig": {"defaults": defaults, "overrides": []}, "options": options or {}}
        if description:
            p["description"] = description
        if transformations:
            p["transformations"] = transformations
        self.d["panels"].append(p)
        self.x += w

    def write(self) -> Path:
        path = HERE / "dashboards" / f"{self.d['uid']}.json"
        path.write_text(json.dumps(self.d, indent=2) + "\n")
        return path


NEWS2_COLOURS = [(None, "green"), (1, "yellow"), (5, "orange"), (7, "red")]


def ward_overview() -> Board:
    b = Board("pulsegate-ward", "PulseGate: ward overview", "Beds, latest vitals, NEWS2 and open alarms per gateway.",
              [gateway_var()], time_from="now-1h")
    b.panel("table", "Latest vitals per bed", [target(
        f'SELECT last("mean") AS "value" FROM "vitals" WHERE {GW} AND $timeFilter GROUP BY "gateway", "bed", "param"',
        fmt="table")], w=16, h=10, description="mean of the last summary interval of each parameter",
        transformations=[{"id": "groupingToMatrix", "options": {"columnField": "param", "rowField": "bed",
                                                                 "valueField": "value"}}])
    b.panel("bargauge", "NEWS2 now", [target(
        f'SELECT last("news2") FROM "scores" WHERE {GW} AND $timeFilter GROUP BY "gateway", "bed"',
        alias="$tag_bed")], w=8, h=10, thresholds=NEWS2_COLOURS,
        options={"orientation": "horizontal", "displayMode": "basic", "reduceOptions": {"calcs": ["lastNotNull"]}})
    b.panel("table", "Alarms: latest state of each", [target(
        'SELECT max("changed_ns") AS "changed_ns", "state", "priority", "condition", "source", "bed" FROM "alarms" '
        f'WHERE {GW} AND $timeFilter GROUP BY "gateway", "alarm_id"', fmt="table")], w=24, h=9,
        description="one row per alarm with its latest state change; filter out state = cleared for the open ones",
        transformations=[{"id": "filterByValue", "options": {"type": "exclude", "match": "any", "filters": [
            {"fieldName": "state", "config": {"id": "equal", "options": {"value": "cleared"}}}]}}])
    b.panel("timeseries", "NEWS2 per bed", [target(
        f'SELECT max("news2") FROM "scores" WHERE {GW} AND $timeFilter GROUP BY time($__interval), "gateway", "bed" '
        "fill(none)", alias="$tag_gateway $tag_bed")], w=24, h=8, thresholds=NEWS2_COLOURS)
    return b


def patient_trends() -> Board:
    pat = '"patient" =~ /^$patient$/'
    alarms = {"name": "alarms raised", "datasource": INFLUX, "enable": True, "iconColor": "red",
              "query": 'SELECT "condition", "priority", "source" FROM "alarms" WHERE "patient" =~ /^$patient$/ '
                       "AND \"state\" = 'raised' AND $timeFilter",
              "textColumn": "condition", "tagsColumn": "priority,source"}
    b = Board("pulsegate-patient", "PulseGate: patient trends",
              "Per-interval summaries of one pseudonymous patient (mean with min-max band), NEWS2 and the anomaly "
              "score; alarms as annotations.",
              [gateway_var(),
               var("bed", f'SHOW TAG VALUES FROM "vitals" WITH KEY = "bed" WHERE {GW}', "bed"),
               var("patient", f'SHOW TAG VALUES FROM "vitals" WITH KEY = "patient" WHERE {GW} AND "bed" =~ /^$bed$/',
                   "patient (pseudonym)", include_all=False, multi=False)],
              annotations=[alarms])
    for param, unit in UNITS.items():
        q = (f'SELECT mean("mean") AS "mean", min("min") AS "min", max("max") AS "max" FROM "vitals" '
             f"WHERE {pat} AND \"param\" = '{param}' AND $timeFilter GROUP BY time($__interval) fill(none)")
        b.panel("timeseries", param.replace("_", " "), [target(q)], w=8, h=7, unit=unit)
    b.panel("timeseries", "NEWS2", [target(
        f'SELECT max("news2") AS "NEWS2" FROM "scores" WHERE {pat} AND $timeFilter GROUP BY time($__interval) '
        "fill(none)")], w=12, h=7, thresholds=NEWS2_COLOURS)
    b.panel("timeseries", "anomaly score", [target(
        f'SELECT max("anomaly") AS "anomaly" FROM "scores" WHERE {pat} AND $timeFilter GROUP BY time($__interval) '
        "fill(none)")], w=12, h=7, unit="percentunit")
    return b


def alarm_burden() -> Board:
    bed_minutes = ('SELECT count("n") AS "bed_minutes" FROM (SELECT max("count") AS "n" FROM "vitals" '
                   f'WHERE {GW} AND $timeFilter GROUP BY time(1m), "gateway", "bed")')
    b = Board("pulsegate-alarm-burden", "PulseGate: alarm burden",
              "Alarms raised per bed-day (bed-days = minutes with data from a bed / 1440), by priority and source.",
              [gateway_var()], time_from="now-7d")
    for by in ("priority", "source"):
        raised = (f'SELECT count("condition") AS "raised" FROM "alarms" WHERE {GW} AND "state" = \'raised\' '
                  f'AND $timeFilter GROUP BY "{by}"')
        b.panel("bargauge", f"Alarms per bed-day by {by}", [
            target(raised, "A", alias=f"$tag_{by}"), target(bed_minutes, "B"),
            {"refId": "C", "datasource": EXPR, "type": "reduce", "expression": "A", "reducer": "sum", "hide": True},
            {"refId": "D", "datasource": EXPR, "type": "reduce", "expression": "B", "reducer": "sum", "hide": True},
            {"refId": "E", "datasource": EXPR, "type": "math", "expression": "$C / ($D / 1440)"},
        ], w=12, h=8, options={"orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}},
            description="A: alarms raised in the range; B: bed-minutes with data; E = A / (B / 1440)")
    b.panel("timeseries", "Alarms raised per hour by priority", [target(
        f'SELECT count("condition") FROM "alarms" WHERE {GW} AND "state" = \'raised\' AND $timeFilter '
        'GROUP BY time(1h), "priority" fill(0)', alias="$tag_priority")], w=12, h=8)
    b.panel("table", "Alarms raised by condition", [target(
        f'SELECT count("condition") AS "raised" FROM "alarms" WHERE {GW} AND "state" = \'raised\' AND $timeFilter '
        'GROUP BY "priority", "source", "kind"', fmt="table")], w=12, h=8)
    b.panel("timeseries", "Alarm latency (sample received -> delivered on the gateway)", [target(
        f'SELECT mean("latency_total_ms") FROM "alarms" WHERE {GW} AND $timeFilter GROUP BY time($__interval), '
        '"priority" fill(none)', alias="$tag_priority")], w=24, h=7, unit="ms")
    return b


def fleet_health() -> Board:
    b = Board("pulsegate-fleet", "PulseGate: fleet health",
              "Gateways online, outbox backlog and oldest unsent record, ingest rate, dropped records and dead "
              "letters.", [gateway_var()], time_from="now-6h")
    b.panel("stat", "Online now", [target(
        f'SELECT last("online") FROM "status" WHERE {GW} AND $timeFilter GROUP BY "gateway"', alias="$tag_gateway")],
        w=24, h=4, options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
        thresholds=[(None, "red"), (1, "green")], description="the last status each gateway sent (1 = online)")
    b.panel("timeseries", "Outbox backlog (records)", [target(
        f'SELECT max("backlog") FROM "status" WHERE {GW} AND $timeFilter GROUP BY time($__interval), "gateway" '
        "fill(none)", alias="$tag_gateway")], w=12)
    b.panel("timeseries", "Oldest unsent record", [target(
        f'SELECT max("oldest_unsent_s") FROM "status" WHERE {GW} AND $timeFilter GROUP BY time($__interval), '
        '"gateway" fill(none)', alias="$tag_gateway")], w=12, unit="s")
    b.panel("timeseries", "Summary items stored per minute", [target(
        f'SELECT count("count") FROM "vitals" WHERE {GW} AND $timeFilter GROUP BY time(1m), "gateway" fill(0)',
        alias="$tag_gateway")], w=12, description="from InfluxDB itself: what the ingest wrote")
    b.panel("timeseries", "Records dropped on gateways (disk quota gaps)", [target(
        f'SELECT sum("count") FROM "gaps" WHERE {GW} AND $timeFilter GROUP BY time($__interval), "gateway", '
        '"gap_stream" fill(none)', alias="$tag_gateway $tag_gap_stream")], w=12)
    b.panel("timeseries", "Ingest: points written per second (Prometheus)", [
        {"refId": "A", "datasource": PROM, "expr": "sum(rate(pulsegate_ingest_points_written_total[5m]))",
         "legendFormat": "points/s"}], w=12, datasource=PROM)
    b.panel("timeseries", "Ingest: dead letters per hour by reason (Prometheus)", [
        {"refId": "A", "datasource": PROM, "expr": "sum by (reason) (increase(pulsegate_ingest_deadletters_total[1h]))",
         "legendFormat": "{{reason}}"}], w=12, datasource=PROM)
    return b


def model_versions() -> Board:
    b = Board("pulsegate-models", "PulseGate: model versions",
              "Software and model versions each gateway reports, and the model events (promoted, rolled back).",
              [gateway_var()], time_from="now-7d")
    b.panel("table", "Versions per gateway", [target(
        'SELECT last("software") AS "software", last("models") AS "models" FROM "status" '
        f'WHERE {GW} AND $timeFilter GROUP BY "gateway"', fmt="table")], w=24, h=8,
        description="models: JSON object name -> version, as in the gateway's status message")
    b.panel("table", "Model events", [target(
        'SELECT "kind", "detail" FROM "events" WHERE "kind" =~ /^model_/ AND ' + GW + " AND $timeFilter "
        "ORDER BY time DESC LIMIT 200", fmt="table")], w=24, h=10)
    return b


BOARDS = (ward_overview, patient_trends, alarm_burden, fleet_health, model_versions)


def main() -> None:
    for make in BOARDS:
        print(make().write())


if __name__ == "__main__":
    main()
