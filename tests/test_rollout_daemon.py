"""A staged rollout against a FULL EdgeDaemon (issue 12): real mosquitto (local bus and cloud broker), the
daemon built from its TOML with the shipped, signed vitals-anomaly 2.0.0 on LiteRT as its active model, its
own model slots, shadow scorer, outbox and uplink; the cloud daemon's ingest into a real influxd (the uplink
holds its records while no ingest is subscribed) and the cloud's RolloutRun on the same broker.

Samples go into the daemon's clinical stage on an accelerated clock (one minute of every bed per feeding
step, the receive times running ahead of the wall clock so that each step closes a minute bucket), so the
daemon's own anomaly sweep scores the beds and, while a candidate is in shadow, runs it beside the active
model on the same batches. The gateway's ShadowReports travel through its outbox and uplink to the cloud
status topic, where the rollout decides on them:

1. a regressing candidate (2.0.0's network signed as 2.1.0 with a threshold that alarms on every bed) is
   rolled back, the gateway stays on 2.0.0 and records 2.1.0 as rejected;
2. then a good candidate (the same network signed as 2.2.0) is promoted: the daemon's clinical stage
   scores with 2.2.0 and the slot's ACTIVE names it (what a restart uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from pathlib import Path

import numpy as np
import pytest

from bench.localservices import Influxd, Mosquitto
from clinical.sample import Sample
from cloud.config import load_cloud_config
from cloud.daemon import CloudDaemon
from cloud.rollout import Broker, Rollout, RolloutRun
from cloud.rollout_plan import Criteria, plan_stages
from cloud.training.scenarios import PARAMS, GeneratorParams, generate
from edge.config import load_edge_config
from edge.daemon import EdgeDaemon
from tests.test_end_to_end import influxql
from tests.test_feedback import cloud_toml
from tests.test_rollout import candidate
from wire.model_manifest import load_private_key

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
V2 = REPO / "models" / "vitals-anomaly" / "2.0.0"
KEY = REPO / "examples" / "keys" / "dev-signing.key"
PUB = REPO / "examples" / "keys" / "dev-signing.pub"
BEDS = 6


def edge_toml(tmp: Path, gw: str, site: str, broker: Mosquitto) -> Path:
    beds = "".join(f'[[beds]]\nid = "bed-{k:02d}"\npatient = "MRN-90{k:04d}"\n' for k in range(1, BEDS + 1))
    (tmp / "pseudonym-key").write_text("0123456789abcdef0123456789abcdef")
    p = tmp / "edge.toml"
    p.write_text(f"""
[gateway]
id = "{gw}"
site = "{site}"
state_dir = "{tmp / 'state'}"
pseudonym_key = "pseudonym-key"
[http]
listen = "127.0.0.1"
port = 0
[auth]
insecure_no_auth = true
[local_bus]
host = "127.0.0.1"
port = {broker.port}
[uplink]
host = "127.0.0.1"
port = {broker.port}
outbox_path = "outbox.sqlite"
[clinical.anomaly]
model_dir = "{V2}"
interval_s = 0.2
[models]
trusted_keys = ["{PUB}"]
{beds}""")
    return p


class Feeder:
    """One accelerated minute per step: a minute mean per bed and parameter from synthetic scenarios."""

    def __init__(self, daemon: EdgeDaemon) -> None:
        gp = GeneratorParams(hours=12.0, dt=60.0)
        self.daemon = daemon
        self.series = []
        for k in range(BEDS):
            sc = generate(31, k, gp)
            self.series.append(np.stack([np.where(sc.quality[p] == 0, sc.values[p], np.nan) for p in PARAMS], 1))
        self.base = time.monotonic() + 1.0
        self.minute = 0

    def step(self) -> None:
        t = self.base + 60.0 * self.minute
        for k, series in enumerate(self.series):
            row = series[self.minute % len(series)]
            for p, v in zip(PARAMS, row, strict=True):
                if not math.isnan(v):
                    self.daemon.clinical.on_sample(Sample(f"bed-{k + 1:02d}", p, float(v), "", t, time.time()))
        self.minute += 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.step()
            await asyncio.sleep(0.25)


async def test_shadow_reports_through_the_uplink_decide_rollback_then_promote(
        tmp_path: Path, broker: Mosquitto, influx: Influxd, unique: str) -> None:
    gw, site = f"gw-{unique}", f"s{unique}"
    cloud = CloudDaemon(load_cloud_config(cloud_toml(tmp_path, unique, broker, influx)), tmp_path)
    edge = EdgeDaemon(load_edge_config(edge_toml(tmp_path, gw, site, broker)), tmp_path)
    assert edge.shadow is not None and edge.shadow.active.version == "2.0.0"
    stop, feed_stop, cloud_stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    cloud_task = asyncio.create_task(cloud.run(cloud_stop, install_signals=False))
    task = asyncio.create_task(edge.run(stop, install_signals=False))
    feeder = Feeder(edge)
    feed = asyncio.create_task(feeder.run(feed_stop))
    crit = Criteria(dwell_s=3.0, report_timeout_s=90.0, min_bed_windows=12)

    async def roll(model_dir: Path, audit: str) -> dict:
        run = RolloutRun(Rollout(model_dir, site, plan_stages([gw], canary=[gw]), load_private_key(KEY), crit,
                                 Broker(port=broker.port), audit_path=tmp_path / audit, poll_s=0.2))
        return await asyncio.wait_for(run.run(), 240)

    try:
        bad = await roll(candidate(tmp_path, "2.1.0", threshold=1e-9, base=V2), "bad.jsonl")
        assert bad["outcome"] == "rolled_back", bad["decisions"]
        assert [d["action"] for d in bad["decisions"]] == ["offer", "rollback"]
        assert "agreement 0.000" in bad["decisions"][-1]["reason"]  # it alarms on every bed the active does not
        fig = bad["reports"][gw]  # what the daemon reported through its outbox and uplink
        assert fig["cand_alarms"] > fig["active_alarms"] and fig["bed_windows"] > 0

        def settled() -> bool:
            return edge.shadow is not None and edge.shadow.candidate is None
        deadline = time.monotonic() + 60
        while not settled():
            assert time.monotonic() < deadline, "the gateway never dropped the rolled-back candidate"
            await asyncio.sleep(0.2)
        assert edge.shadow.active.version == "2.0.0"
        slot = tmp_path / "state" / "models" / "vitals-anomaly"
        assert "2.1.0" in (slot / "REJECTED").read_text().split()

        good = await roll(candidate(tmp_path, "2.2.0", base=V2), "good.jsonl")
        assert good["outcome"] == "promoted", good["decisions"]
        assert [d["action"] for d in good["decisions"]] == ["offer", "promote"]
        fig = good["reports"][gw]
        assert fig["agreement"] == 1.0 and fig["bed_windows"] >= 12 and fig["errors"] == 0
        deadline = time.monotonic() + 60
        while edge.shadow.active.version != "2.2.0":
            assert time.monotonic() < deadline, "the promote never reached the gateway"
            await asyncio.sleep(0.2)
        assert edge.clinical.scorer is edge.shadow  # the clinical stage scores with the promoted model
        assert (slot / "ACTIVE").read_text() == "2.2.0"
        assert edge.model_versions["vitals-anomaly"] == "2.2.0"
        # the cloud ingest stored the same reports (what /api/rollouts and the dashboard show)
        rows = influxql(influx, unique, f"SELECT * FROM shadow_reports WHERE gateway = '{gw}'")
        assert {r["version"] for r in rows} >= {"2.1.0", "2.2.0"}, rows[:3]
    finally:
        feed_stop.set()
        with contextlib.suppress(Exception):
            await feed
        stop.set()
        await asyncio.wait_for(task, 60)
        cloud_stop.set()
        await asyncio.wait_for(cloud_task, 30)
