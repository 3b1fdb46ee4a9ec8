"""``pulsegate demo --learning-loop``: the whole learning loop on this machine in a few minutes.

1. a private mosquitto (the cloud broker) and influxd, and the real cloud daemon's ingest;
2. three emulated gateways publish recent history through the broker and the ingest into InfluxDB:
   per-minute summaries of synthetic patients, bedside threshold alarms, an emulated nurse's verdicts on
   most of them and a clinical event at the end of each deterioration (bench/fleet_history.py);
3. the fleet's model is the newest shipped, signed vitals-anomaly (the gateways' default);
4. ``model retrain``: the fleet's data from InfluxDB, labels from the verdicts and events, split by patient
   and time, a candidate warm-started from the active model's weights and fine-tuned on the fleet (synthetic ward
   patients as augmentation), candidate and active on the same held-out patients, the paired gate; signed
   only if it passes;
5. when it passed: ``model rollout`` of THAT candidate to the emulated gateways running the active model (the gateway's
   own model slots and shadow scorer on LiteRT, bench/rollout_gateways.py): the canary, then the fleet,
   promoted or rolled back on the shadow figures. When the gate refused it, it is signed by nobody and
   nothing is rolled out (``rollout.outcome`` ``not_rolled_out``, ``rollout.what`` says why).

The JSON has ``retrain`` (the retrain's report) and ``rollout`` (stages, decisions with reasons, figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.fleet_history import History, HistoryOptions, fleet_history
from bench.localservices import Influxd, Mosquitto
from bench.rollout_gateways import EmulatedGateway
from cloud.config import load_cloud_config
from cloud.daemon import CloudDaemon
from cloud.influx import InfluxWriter
from wire import codec, topics
from wire.messages import Summary
from wire.model_manifest import newest_model_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY = REPO_ROOT / "examples" / "keys" / "dev-signing.key"
PUB = REPO_ROOT / "examples" / "keys" / "dev-signing.pub"
ACTIVE = newest_model_dir(REPO_ROOT / "models", "vitals-anomaly") or REPO_ROOT / "models" / "vitals-anomaly" / "2.0.0"
SITE = "ward-demo"
DB = "pulsegate"


async def _publish_history(port: int, history: History) -> int:
    """Each emulated gateway sends its messages through the broker (QoS 1), as its uplink would."""
    import aiomqtt

    by_gw: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for gw, stream, msg in history.messages:
        by_gw[gw].append((stream, msg))

    async def one(gw: str, items: list[tuple[str, Any]]) -> int:
        seq: dict[str, int] = defaultdict(int)
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"pg-{gw}-history", timeout=30) as c:
            for stream, msg in items:
                seq[stream] += 1
                msg.seq = seq[stream]
                await c.publish(topics.uplink(SITE, gw, stream), codec.encode(msg), qos=1)
        return len(items)

    return sum(await asyncio.gather(*(one(g, it) for g, it in by_gw.items())))


async def _wait_points(influx: InfluxWriter, history: History, within_s: float) -> int:
    """Wait until InfluxDB holds every summary item the gateways sent (the ingest acknowledges after writing)."""
    want = sum(len(msg.items) for _, s, msg in history.messages if isinstance(msg, Summary))
    deadline = time.monotonic() + within_s
    n = 0
    while time.monotonic() < deadline:
        rows = await influx.rows('SELECT count("count") FROM "vitals"')
        n = int(rows[0]["count"]) if rows else 0
        if n >= want:
            return n
        await asyncio.sleep(1.0)
    raise RuntimeError(f"the ingest stored {n} of {want} summary points within {within_s:.0f} s")


async def _loop(d: Path, duration: float | None, log: Callable[[str], None]) -> dict[str, Any]:
    from cloud.rollout import Broker, Rollout, RolloutRun
    from cloud.rollout_plan import Criteria, plan_stages
    from cloud.training.fleet_data import load_fleet, since_seconds
    from cloud.training.retrain import RetrainOptions, TooLittleData, retrain
    from wire.model_manifest import load_private_key

    t0 = time.monotonic()
    mq = Mosquitto(d / "mosquitto").start()
    inf = Influxd(d / "influxdb").start()
    stop = asyncio.Event()
    try:
        (d / "cloud.toml").write_text(f"""
[cloud]
id = "cloud-learning-demo"
[api]
port = 0
[ingest]
host = "127.0.0.1"
port = {mq.port}
client_id = "ingest-learning-demo"
deadletter_dir = "{d / 'deadletter'}"
flush_s = 0.2
[influx]
url = "{inf.url}"
database = "{DB}"
""")
        cloud = CloudDaemon(load_cloud_config(d / "cloud.toml"), d)
        cloud_task = asyncio.create_task(cloud.run(stop, install_signals=False))
        history = fleet_history(HistoryOptions(gateways=3, patients_per_gateway=16, hours=8.0), time.time())
        log(f"{history.patients} emulated patients on 3 gateways: {history.alarms} alarms, {history.verdicts} nurse "
            f"verdicts, {history.events} clinical events")
        await asyncio.sleep(1.0)
        sent = await _publish_history(mq.port, history)
        influx = InfluxWriter(inf.url, DB)
        try:
            points = await _wait_points(influx, history, 180.0)
            fleet = await load_fleet(influx, since_seconds("30d"))
        finally:
            await influx.close()
        log(f"{sent} messages through the broker and the ingest: {points} summary points in InfluxDB")
        opts = RetrainOptions(out_dir=d / "candidates", active_dir=ACTIVE, key_path=KEY, synthetic=40, epochs=3)
        try:
            report = await asyncio.to_thread(retrain, fleet, opts, log)
        except TooLittleData as exc:
            report = {"error": "too_little_data", "message": str(exc)}
        log(f"retrain: {_gate_line(report)}")
        out: dict[str, Any] = {"history": {"gateways": 3, "patients": history.patients, "alarms": history.alarms,
                                           "verdicts": history.verdicts, "events": history.events,
                                           "messages": sent, "summary_points_in_influxdb": points},
                               "retrain": report}
        if not report.get("signed"):  # a refused candidate is signed by nobody and never leaves the cloud
            out["rollout"] = {"outcome": "not_rolled_out", "decisions": [],
                              "what": f"nothing: no signed candidate ({_gate_line(report)})"}
            return out
        model_dir, what = Path(report["model_dir"]), f"the retrained candidate {report['candidate']['version']}"
        log(f"rolling out {what}: canary gw-01, then the fleet")
        gws = [EmulatedGateway(f"gw-{k:02d}", SITE, d / f"gateway-{k:02d}", ACTIVE, [PUB], "127.0.0.1", mq.port,
                               tick_s=0.1, report_every_s=0.5, seed=40 + k) for k in (1, 2, 3)]
        tasks = [asyncio.create_task(g.run()) for g in gws]
        dwell = 5.0 if duration is None else max(3.0, min(30.0, duration / 20))
        try:
            run = RolloutRun(Rollout(model_dir, SITE,
                                     plan_stages([g.gateway for g in gws], canary=["gw-01"]),
                                     load_private_key(KEY), Criteria(dwell_s=dwell, report_timeout_s=30.0,
                                                                     min_bed_windows=12),
                                     Broker(port=mq.port), audit_path=d / "rollout-audit.jsonl", poll_s=0.2))
            t_roll = time.monotonic()
            out["rollout"] = {"what": what, **await asyncio.wait_for(run.run(), 300)}
            out["rollout"]["seconds"] = round(time.monotonic() - t_roll, 1)
            await asyncio.sleep(1.0)
            out["rollout"]["gateways"] = {g.gateway: {"active": g.active_version,
                                                      "rejected": g.slots.rejected} for g in gws}
        finally:
            for g in gws:
                g.stop()
            await asyncio.gather(*tasks)
        return out
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(cloud_task, 30)
        mq.stop()
        inf.stop()
        with contextlib.suppress(Exception):
            log(f"learning loop done in {time.monotonic() - t0:.0f} s")


def _gate_line(report: dict[str, Any]) -> str:
    if "gate" not in report:
        return str(report.get("message", "no retrain report"))
    g = report["gate"]
    return (f"candidate {report['candidate']['version']} vs active {report['active']['version']}: gate "
            f"{'passed' if g['pass'] else 'REFUSED'}: {'; '.join(g['reasons'])}")


def run_learning_loop(duration: float | None, state_dir: Path | None, log: Callable[[str], None]) -> dict[str, Any]:
    t0 = time.monotonic()
    tmp = None
    if state_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="pulsegate-learning-"))
    d = state_dir or tmp
    assert d is not None
    d.mkdir(parents=True, exist_ok=True)
    try:
        out = asyncio.run(_loop(d, duration, log))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out
