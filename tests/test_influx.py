"""The InfluxDB client, error policy and retention against a real influxd."""

from __future__ import annotations

import pytest

from bench.localservices import Influxd
from cloud.delivery import Delivery
from cloud.influx import InfluxConfig, InfluxError, InfluxWriter
from cloud.points import line, to_lines
from cloud.retention import ROLLUP_RP, ensure_schema, rollup_select
from tests.uplink_fixtures import T0, summary

pytestmark = pytest.mark.integration


async def test_field_type_conflict_drops_only_the_offending_point(influx: Influxd, unique: str) -> None:
    w = InfluxWriter(influx.url, unique)
    await w.create_database()
    assert (await w.write(["m,k=a v=1i 1"])).status == 204
    lines = [f"m,k=a v={i}i {i + 10}" for i in range(50)]
    lines[20] = "m,k=a v=1.5 99999"  # float into an integer field
    raw = await w.write(lines)
    assert raw.status == 400 and "partial write" in raw.body  # what the server says to the whole batch
    d = Delivery(w)
    rejected = await d.deliver(lines)
    assert [r.line for r in rejected] == [lines[20]] and "field type conflict" in rejected[0].reason
    rows = await w.rows("SELECT v FROM m")
    assert len(rows) == 1 + 49
    await w.close()


async def test_string_fields_and_tags_round_trip(influx: Influxd, unique: str) -> None:
    w = InfluxWriter(influx.url, unique)
    await w.create_database()
    text = 'quote " backslash \\ comma, eq= new\nline'
    assert (await w.write([line("ev ents", {"bed": "3 A,=x"}, {"s": text, "seq": 1}, T0)])).ok
    rows = await w.rows('SELECT s, seq, bed FROM "ev ents"')
    assert rows == [{"time": T0, "s": text, "seq": 1, "bed": "3 A,=x"}]
    await w.close()


async def test_replayed_message_overwrites_instead_of_doubling(influx: Influxd, unique: str) -> None:
    w = InfluxWriter(influx.url, unique)
    await w.create_database()
    msg = summary(1, beds=4)
    msg.gw, msg.seq = "gw1", 9
    for _ in range(3):
        assert (await w.write(to_lines(msg, "s1", "summaries"))).ok
    rows = await w.rows("SELECT seq FROM vitals")
    assert len(rows) == 4 and {r["seq"] for r in rows} == {9}
    await w.close()


async def test_query_errors_raise(influx: Influxd, unique: str) -> None:
    w = InfluxWriter(influx.url, unique)
    with pytest.raises(InfluxError):
        await w.query("SELEKT nonsense")
    await w.close()


async def test_retention_policies_and_rollups_are_created_once_and_work(influx: Influxd, unique: str) -> None:
    w = InfluxWriter(influx.url, unique)
    cfg = InfluxConfig(url=influx.url, database=unique, raw_days=7, rollup_days=0)
    ran = await ensure_schema(w, cfg)
    assert len(ran) == 4  # raw, rollup, two continuous queries
    assert await ensure_schema(w, cfg) == []  # idempotent
    rps = {row[0]: row for row in (await w.query(f'SHOW RETENTION POLICIES ON "{unique}"'))[0]["series"][0]["values"]}
    assert rps["raw"][1] == "168h0m0s" and rps["raw"][-1] is True
    assert rps[ROLLUP_RP][1] == "0s"
    cqs = [s for s in (await w.query("SHOW CONTINUOUS QUERIES"))[0]["series"] if s["name"] == unique]
    assert {v[0] for v in cqs[0]["values"]} == {"cq_vitals_1h", "cq_scores_1h"}
    # summaries written now (default RP = raw), rolled up with the CQ's own statement
    import time

    hour = (time.time_ns() // 3_600_000_000_000 - 1) * 3_600_000_000_000
    lines = [line("vitals", {"gateway": "g", "bed": "b1", "param": "spo2"},
                  {"count": 10, "min": 90.0 + i, "max": 99.0, "mean": 95.0, "invalid": 1, "seq": i},
                  hour + i * 60_000_000_000) for i in range(5)]
    assert (await w.write(lines)).ok
    await w.query(rollup_select(unique, "vitals"), method="POST")
    rows = await w.rows(f'SELECT * FROM "{unique}"."{ROLLUP_RP}"."vitals_1h"')
    assert len(rows) == 1
    r = rows[0]
    assert (r["count"], r["min"], r["max"], r["mean"], r["invalid"], r["bed"]) == (50, 90.0, 99.0, 95.0, 5, "b1")
    await w.close()
