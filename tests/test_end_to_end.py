"""One reading end to end, through real parts only.

Masimo emulator on a real pty -> SerialDeviceSource -> Pipeline -> Summarizer
-> SQLite outbox -> Uplink (MQTT QoS 1) -> real mosquitto -> IngestWorker ->
real InfluxDB. The edge and cloud daemons are built from TOML configs exactly
as `pulsegate edge run` / `cloud run` build them. The test records every
summary the gateway produced and asserts each arrived as exactly the expected
InfluxDB point (measurement, tags, fields, timestamp), queried with InfluxQL.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bench.localservices import Influxd, Mosquitto
from cloud.config import load_cloud_config
from cloud.daemon import CloudDaemon
from edge.config import load_edge_config
from edge.daemon import EdgeDaemon
from edge.pseudonym import Pseudonymizer
from firmware_bridge.emulators.pty import open_pty_emulator
from wire.messages import Message, Summary

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def influxql(influx: Influxd, db: str, q: str) -> list[dict[str, Any]]:
    url = f"{influx.url}/query?" + urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    rows: list[dict[str, Any]] = []
    for series in body["results"][0].get("series", []) or []:
        for values in series["values"]:
            rows.append(dict(zip(series["columns"], values, strict=True)) | {"_measurement": series["name"]})
    return rows


async def test_masimo_reading_arrives_as_exact_influx_points(
    tmp_path: Path, broker: Mosquitto, influx: Influxd, unique: str
) -> None:
    key = tmp_path / "pseudonym-key"
    key.write_text("0123456789abcdef0123456789abcdef")
    emu = open_pty_emulator("masimo", "stable", seed=3)
    try:
        edge_toml = tmp_path / "edge.toml"
        edge_toml.write_text(f"""
[gateway]
id = "gw-{unique}"
site = "e2e"
state_dir = "{tmp_path / 'state'}"
pseudonym_key = "pseudonym-key"
[http]
port = 0
[summaries]
interval_s = 1
[uplink]
host = "127.0.0.1"
port = {broker.port}
outbox_path = "outbox.sqlite"
[[beds]]
id = "bed-7"
patient = "MRN-424242"
[models]
trusted_keys = ["{REPO / 'examples' / 'keys' / 'dev-signing.pub'}"]
[[devices]]
driver = "masimo"
id = "rad8-bed7"
bed = "bed-7"
port = "{emu.path}"
[video]
source = "{REPO / 'examples' / 'video' / 'kvasir-demo.mp4'}"
room = "endo-1"
fps_limit = 10.0
threads = 1
""")
        cloud_toml = tmp_path / "cloud.toml"
        cloud_toml.write_text(f"""
[cloud]
id = "c-{unique}"
[api]
port = 0
[ingest]
host = "127.0.0.1"
port = {broker.port}
client_id = "ingest-{unique}"
group = "g{unique}"
deadletter_dir = "{tmp_path / 'dead'}"
flush_s = 0.2
[influx]
url = "{influx.url}"
database = "{unique}"
""")
        cloud = CloudDaemon(load_cloud_config(cloud_toml), tmp_path)
        edge = EdgeDaemon(load_edge_config(edge_toml), tmp_path)
        produced: list[Summary] = []
        forward = edge.summarizer.publish

        def record(stream: str, msg: Message) -> None:
            if isinstance(msg, Summary):
                produced.append(msg)
            forward(stream, msg)

        edge.summarizer.publish = record
        cloud_stop, edge_stop = asyncio.Event(), asyncio.Event()
        cloud_task = asyncio.create_task(cloud.run(cloud_stop, install_signals=False))
        await asyncio.sleep(0.5)
        edge_task = asyncio.create_task(edge.run(edge_stop, install_signals=False))
        await asyncio.sleep(4.5)  # several 1 s summary intervals
        deadline = time.monotonic() + 90  # and the endoscopy room's first raise (model load, clip start: slower
        while not any(edge._findings_present.values()):  # on a loaded machine)
            assert time.monotonic() < deadline, "no polyp finding was raised on the demo clip"
            await asyncio.sleep(0.2)
        edge_stop.set()
        assert await asyncio.wait_for(edge_task, 30) == 0
        # a clean stop drains: the final partial interval is flushed and uplinked before the uplink stops
        expected = [(m.seq, item) for m in produced for item in m.items if item.count > 0]
        assert edge.outbox is not None and edge.outbox.backlog() == 0
        assert len(expected) >= 6, "the emulator should have produced several summaries"
        pseudonym = Pseudonymizer(b"0123456789abcdef0123456789abcdef").pseudonym("MRN-424242")
        rows: list[dict[str, Any]] = []
        for _ in range(100):
            rows = influxql(influx, unique, f"SELECT * FROM vitals WHERE gateway = 'gw-{unique}'")
            if len(rows) >= len(expected):
                break
            await asyncio.sleep(0.2)
        findings = influxql(influx, unique, f"SELECT * FROM findings WHERE gateway = 'gw-{unique}'")
        events = influxql(influx, unique, f"SELECT * FROM events WHERE gateway = 'gw-{unique}'")
        cloud_stop.set()
        assert await asyncio.wait_for(cloud_task, 30) == 0
    finally:
        emu.stop()
    by_key = {(r["time"], r["param"]): r for r in rows}
    assert len(by_key) == len(rows), "no point is doubled"
    stored = 0
    for seq, item in expected:
        row = by_key.get((item.t, item.param))
        if row is None:
            continue
        stored += 1
        assert row["_measurement"] == "vitals"
        assert row["gateway"] == f"gw-{unique}" and row["site"] == "e2e" and row["stream"] == "summaries"
        assert row["bed"] == "bed-7" and row["patient"] == pseudonym and "MRN" not in json.dumps(row)
        assert row["seq"] == seq and row["count"] == item.count and row["invalid"] == item.invalid
        for f in ("min", "max", "mean", "last"):
            assert math.isclose(row[f], getattr(item, f)), (f, row[f], getattr(item, f))
        assert row["time"] % 1_000_000_000 == 0  # aligned to the 1 s interval start
    assert stored == len(expected) and stored >= 6
    params = {item.param for _, item in expected}
    assert {"spo2", "pulse_rate"} <= params
    # the endoscopy room: findings (geometry only, no pixels) and the raise event reached the cloud
    assert findings and all(f["room"] == "endo-1" and 0 < f["area"] < 1 for f in findings if f["present"])
    assert "polyp_finding_raised" in {e["kind"] for e in events}
