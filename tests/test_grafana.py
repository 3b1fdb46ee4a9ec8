"""The Grafana dashboards in examples/grafana: every panel's InfluxQL (template variables substituted
as Grafana does) runs against a real influxd holding demo-like data and returns rows."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from bench.localservices import Influxd
from cloud.influx import InfluxWriter
from cloud.ingest import IngestWorker
from runtime.metrics import new_registry
from tests.interop_fixtures import ward_database

pytestmark = pytest.mark.integration
GRAFANA = Path(__file__).resolve().parents[1] / "examples" / "grafana"
BOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RANGE = {"$timeFilter": "time > now() - 7d", "$__interval": "1m", "$interval": "1m"}


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def substitute(query: str, values: dict[str, str]) -> str:
    for k, v in RANGE.items():
        query = query.replace(k, v)
    for name, value in values.items():  # already regex-escaped, as Grafana does inside /.../
        query = re.sub(r"\$" + name + r"\b", lambda _m, v=value: v, query)
    assert "$" not in query.replace("$/", ""), f"unsubstituted variable in {query}"
    return query


def influx_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for p in board["panels"]:
        for t in p["targets"]:
            if t["datasource"]["type"] == "influxdb":
                out.append((f"{board['uid']} / {p['title']} / {t['refId']}", t["query"]))
    for a in board["annotations"]["list"]:
        out.append((f"{board['uid']} / annotation {a['name']}", a["query"]))
    return out


@pytest.fixture
async def demo(influx: Influxd, unique: str) -> AsyncIterator[InfluxWriter]:
    async for w in ward_database(influx.url, unique):
        yield w


def test_dashboards_are_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    made = {b().d["uid"]: b().d for b in gen.BOARDS}
    assert {p.stem for p in BOARDS} == set(made) == {"pulsegate-ward", "pulsegate-patient", "pulsegate-alarm-burden",
                                                     "pulsegate-fleet", "pulsegate-models"}
    for path in BOARDS:
        assert load(path) == json.loads(json.dumps(made[path.stem])), f"{path.name}: run examples/grafana/generate.py"
    ds = (GRAFANA / "provisioning" / "datasources" / "pulsegate.yaml").read_text()
    assert "uid: pulsegate-influx" in ds and "type: influxdb" in ds and "dbName:" in ds


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
async def test_every_panel_query_returns_rows(demo: InfluxWriter, path: Path) -> None:
    board = load(path)
    values: dict[str, str] = {}
    choices: list[dict[str, str]] = [{}]
    for v in board["templating"]["list"]:  # in order: a variable's query may use the ones before it
        rows = await demo.rows(substitute(v["query"], values))
        assert rows, f"variable {v['name']} has no values"
        found = sorted(re.escape(r["value"]).replace("/", r"\/") for r in rows)
        if v["includeAll"]:  # "All" becomes (a|b|...), as Grafana writes it for InfluxQL
            values[v["name"]] = "(" + "|".join(found) + ")"
        else:  # a single-value variable: each query must return rows for at least one of its values
            values[v["name"]] = found[0]
            choices = [{**c, v["name"]: f} for c in choices for f in found]
    queries = influx_queries(board)
    assert queries
    for where, q in queries:
        for choice in choices:
            rows = await demo.rows(substitute(q, {**values, **choice}))
            if [r for r in rows if any(v is not None for k, v in r.items() if k != "time")]:
                break
        else:
            pytest.fail(f"{where}: no rows for {substitute(q, values)}")


def test_prometheus_panels_use_metrics_the_cloud_daemon_exports() -> None:
    registry, _ = new_registry()
    w = IngestWorker("127.0.0.1", 1, InfluxWriter("http://127.0.0.1:1", "x"), registry=registry)
    text = generate_latest(registry).decode()
    exported = set(re.findall(r"^# TYPE (pulsegate_\w+)", text, re.M))
    del w
    used = set()
    for path in BOARDS:
        for p in load(path)["panels"]:
            for t in p["targets"]:
                if t["datasource"]["type"] == "prometheus":
                    used |= set(re.findall(r"pulsegate_\w+", t["expr"]))
    assert used and used <= exported, used - exported
