"""Benchmarks of the reliable uplink: `pulsegate bench ingest` and `pulsegate bench outage`.

Both start a private mosquitto and influxd, run the ingest worker in this
process and the gateway (bench/outbox_driver.py: Outbox + Uplink) as a child
process, as on real deployments where gateway and cloud are different
machines. Loss and duplication are measured in InfluxDB itself: per
measurement, the number of points and the sum of their ``seq`` fields must
equal what the gateway produced.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.localservices import Influxd, Mosquitto
from bench.procs import json_lines
from cloud import points
from cloud.influx import InfluxWriter
from cloud.ingest import IngestWorker
from wire import messages

T0 = 1_700_000_000_000_000_000
GATEWAY = "bench-gw"
_REPO = Path(__file__).resolve().parents[1]


def _broker(workdir: Path, port: int = 0) -> Mosquitto:
    return Mosquitto(workdir, port=port).start()  # persistence works as root too (bench.localservices)


def _driver(tmp: Path, port: int, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp / "driver.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_REPO), os.environ.get("PYTHONPATH", "")])}
    with out.open("wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "bench.outbox_driver", "--db", str(tmp / "outbox.sqlite"),
                                 "--gateway", GATEWAY, "--port", str(port), *args], stdout=f,
                                stderr=subprocess.DEVNULL, env=env)
    return proc, out


async def _wait_line(path: Path, key: str, proc: subprocess.Popen[bytes], within_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for d in json_lines(path):
            if key in d:
                return d
        if proc.poll() is not None:
            raise RuntimeError(f"gateway driver exited with {proc.returncode} before {key!r}")
        await asyncio.sleep(0.05)
    raise TimeoutError(f"gateway driver did not report {key!r} within {within_s}s")


async def _stored(db: InfluxWriter, measurements: list[str]) -> dict[str, tuple[int, int]]:
    """Per measurement: (points, sum of seq) stored for the bench gateway."""
    out = {}
    for m in measurements:
        rows = await db.rows(f"SELECT count(seq), sum(seq) FROM \"{m}\" WHERE gateway = '{GATEWAY}'")
        out[m] = (int(rows[0]["count"]), int(rows[0]["sum"])) if rows else (0, 0)
    return out


async def _settle(db: InfluxWriter, expected: dict[str, int], within_s: float) -> dict[str, tuple[int, int]]:
    deadline = time.monotonic() + within_s
    got = await _stored(db, list(expected))
    while time.monotonic() < deadline and any(got[m][0] < n for m, n in expected.items()):
        await asyncio.sleep(0.2)
        got = await _stored(db, list(expected))
    return got


def _loss(done: dict[str, Any], got: dict[str, tuple[int, int]]) -> tuple[int, int, bool]:
    lost = dup = 0
    exact = True
    for m, n in done["expected_points"].items():
        stored, seq_sum = got.get(m, (0, 0))
        lost += max(0, n - stored)
        dup += max(0, stored - n)
        exact = exact and seq_sum == done["expected_seq_sum"][m]
    return lost, dup, exact


def _worker(port: int, url: str, db: str, tmp: Path) -> IngestWorker:
    return IngestWorker("127.0.0.1", port, InfluxWriter(url, db), client_id="bench-ingest", group="bench",
                        batch_points=20000, flush_s=1.0, deadletter_dir=tmp / "deadletter")


async def bench_ingest(n_points: int, per_message: int = 500) -> dict[str, Any]:
    n_msgs = max(1, n_points // per_message)
    n_points = n_msgs * per_message
    with tempfile.TemporaryDirectory(prefix="pg-bench-ingest-") as d:
        tmp = Path(d)
        mq = Mosquitto(tmp / "mq").start()
        idb = Influxd(tmp / "influx").start()
        try:
            # (a) the same points straight to InfluxDB, 5,000 lines per HTTP request
            raw_db = InfluxWriter(idb.url, "bench_raw")
            await raw_db.create_database()
            lines: list[str] = []
            for seq in range(1, n_msgs + 1):
                items = [messages.Raw(bed=f"b{b}", patient=f"p{b}", param="heart_rate", t=T0 + seq * 1_000_000,
                                      value=60.0 + seq % 40, quality=0) for b in range(per_message)]
                msg = messages.RawBatch(v=messages.VERSION, gw=GATEWAY, seq=seq, items=items)
                lines.extend(points.to_lines(msg, "site1", "bulk"))
            began = time.perf_counter()
            for i in range(0, len(lines), 5000):
                resp = await raw_db.write(lines[i : i + 5000])
                if not resp.ok:
                    raise RuntimeError(f"raw write failed: {resp.status} {resp.body[:200]}")
            raw_s = time.perf_counter() - began
            raw_got = await _stored(raw_db, ["raw"])
            await raw_db.close()
            del lines
            # (b) gateway outbox -> mosquitto -> ingest -> InfluxDB
            pipe_db = InfluxWriter(idb.url, "bench_pipe")
            await pipe_db.create_database()
            worker = _worker(mq.port, idb.url, "bench_pipe", tmp)
            await worker.start()
            task = asyncio.create_task(worker.run())
            while not worker.connected:  # noqa: ASYNC110 - waiting for the worker's subscription
                await asyncio.sleep(0.05)
            proc, out = _driver(tmp, mq.port, "--count", str(n_msgs), "--beds", str(per_message), "--rate", "0")
            try:
                await _wait_line(out, "ready", proc, 30)
                began = time.perf_counter()
                while worker.delivery.written < n_points:
                    if proc.poll() not in (None, 0):
                        raise RuntimeError(f"gateway driver failed with {proc.returncode}")
                    await asyncio.sleep(0.02)
                pipe_s = time.perf_counter() - began
                done = await _wait_line(out, "drained", proc, 60)
                got = await _settle(pipe_db, {"raw": n_points}, 10)
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                proc.wait()
                await worker.stop()
                await task
                await pipe_db.close()
            lost, dup, exact = _loss(done, got)
        finally:
            idb.stop()
            mq.stop()
    raw_rate = n_points / raw_s
    rate = n_points / pipe_s
    return {
        "points": n_points,
        "points_per_message": per_message,
        "raw_influx_points_per_s": round(raw_rate),
        "raw_influx_stored": raw_got["raw"][0],
        "points_per_s": round(rate),
        "ratio": round(rate / raw_rate, 3),
        "lost": lost,
        "duplicates": dup,
        "seq_sums_match": exact,
        "ingest_points": worker.points,  # includes the gateway's status points and any rewrites
        "ingest_batches": worker.batches,
    }


async def bench_outage(beds: int, offline_s: float, warm_s: float = 5.0, after_s: float = 5.0,
                       broker_kill: bool = False, ingest_down: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pg-bench-outage-") as d:
        tmp = Path(d)
        mq = _broker(tmp / "mq")
        port = mq.port
        idb = Influxd(tmp / "influx").start()
        db = InfluxWriter(idb.url, "bench_outage")
        await db.create_database()
        worker = _worker(port, idb.url, "bench_outage", tmp)
        await worker.start()
        task = asyncio.create_task(worker.run())
        duration = warm_s + offline_s + after_s
        proc, out = _driver(tmp, port, "--profile", "ward", "--beds", str(beds), "--duration", str(duration))
        try:
            await _wait_line(out, "ready", proc, 30)
            await asyncio.sleep(warm_s)
            if ingest_down:  # the ingest goes first: 2 s of PUBACKed messages wait in the broker for it
                await worker.stop()
                await task
                await asyncio.sleep(2.0)
            mq.stop(kill=broker_kill)  # the gateway loses its broker (SIGTERM, or SIGKILL: a crash)
            await asyncio.sleep(1.0)
            meas = ["raw", "vitals", "scores", "alarms"]
            stored_at_stop = sum(v[0] for v in (await _stored(db, meas)).values())
            written_at_stop = 0 if ingest_down else worker.delivery.written
            await asyncio.sleep(offline_s - 1.0)
            back_wall = time.time()
            mq = _broker(tmp / "mq", port=port)
            back = time.perf_counter()
            if ingest_down:  # restarted with the broker (same client id: its saved session is redelivered)
                worker = _worker(port, idb.url, "bench_outage", tmp)
                await worker.start()
                task = asyncio.create_task(worker.run())
            ticks = [x for x in json_lines(out) if "tick" in x]
            produced_before = ticks[-1]["points"]
            backlog_peak = max(x["backlog"] for x in ticks)
            while True:
                # cheap in-process counter first (queries would load influxd during the drain), then exact
                if worker.delivery.written - written_at_stop < produced_before - stored_at_stop:
                    await asyncio.sleep(0.01)
                    continue
                got = await _stored(db, meas)
                if sum(v[0] for v in got.values()) >= produced_before:
                    break
                if time.perf_counter() - back > offline_s + 120:
                    raise TimeoutError("backlog did not drain")
                await asyncio.sleep(0.05)
            drain_s = time.perf_counter() - back
            stored_wall = time.time()
            connected = [x["connected_at"] for x in json_lines(out) if x.get("connected_at", 0) > back_wall]
            reconnect_s = (connected[0] - back_wall) if connected else float("nan")
            done = await _wait_line(out, "drained", proc, duration + 120)
            got = await _settle(db, done["expected_points"], 30)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait()
            await worker.stop()
            await task
            await db.close()
            idb.stop()
            mq.stop()
    lost, dup, exact = _loss(done, got)
    produced = sum(done["expected_points"].values())
    return {
        "beds": beds,
        "offline_s": offline_s,
        "broker_stop": "SIGKILL" if broker_kill else "SIGTERM",
        "ingest_down": ingest_down,
        "produced": produced,
        "produced_before_reconnect": produced_before,
        "backlog_peak_messages": backlog_peak,
        "lost": lost,
        "duplicates": dup,
        "seq_sums_match": exact,
        "reconnect_s": round(reconnect_s, 3),
        "drain_s": round(stored_wall - connected[0], 3) if connected else None,
        "drain_speedup": round(offline_s / (stored_wall - connected[0]), 1) if connected else None,
        "broker_back_to_caught_up_s": round(drain_s, 3),
        "resent": done.get("resent", 0),
        "note": "reconnect_s: broker start -> gateway connected (its reconnect backoff); drain_s: gateway "
                "connected -> every point produced before the broker came back is in InfluxDB (with "
                "--ingest-down it includes re-sending what the broker lost, after the receipt timeout)",
    }
