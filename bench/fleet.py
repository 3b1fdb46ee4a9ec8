"""`pulsegate bench fleet`: N emulated gateways -> mosquitto -> K ingest worker processes -> influxd.

Everything is real except the gateways' clinical pipeline: a private
mosquitto and influxd (bench.localservices), K ``cloud.ingest_main`` processes
sharing ``$share/fleet/...``, and P processes of emulated gateways
(bench/fleet_gateways.py: a real outbox and MQTT client per gateway). The
gateways' clock may be accelerated (``speed`` emulated seconds per wall
second; 1 = real time).

Measured (bench/fleet_probe.py): points and messages per second stored,
CPU of the ingest workers, broker, influxd and gateways (percent of one core,
over the run), end-to-end latency from the append to the gateway's outbox to
the point being visible in InfluxDB (polled every 0.5 s, so figures are
rounded up to that), memory of the workers and the broker, lost and duplicated
points counted in InfluxDB (points and the sum of their seq per measurement
must equal what the gateways produced), and the gateways' reported backlog.
``influx_pause_s`` stops influxd (SIGSTOP) for that long a third of the way
through, then resumes it (SIGCONT).
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
from typing import IO, Any

from bench.fleet_probe import Probe, cpu_s, latencies, pctl
from bench.localservices import Influxd, Mosquitto
from bench.procs import json_lines
from cloud.influx import InfluxError, InfluxWriter

_REPO = Path(__file__).resolve().parents[1]
MEASUREMENTS = ("vitals", "alarms", "raw")
# a server's settings for a large fleet (docs/operations.md): no series limits (1,000 gateways x 32 beds x
# 8 parameters = 256,000 series per measurement; 1.x refuses writes past 1,000,000 by default), WAL fsyncs
# grouped every 100 ms
INFLUX_DATA_CONF = '  wal-fsync-delay = "100ms"\n  max-series-per-database = 0\n  max-values-per-tag = 0\n'


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(_REPO), os.environ.get("PYTHONPATH", "")])}


def _spawn(args: list[str], out: Path, stdin: bool = False) -> subprocess.Popen[bytes]:
    with out.open("wb") as f:
        return subprocess.Popen([sys.executable, "-m", *args], stdout=f, stderr=subprocess.STDOUT, env=_env(),
                                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)


async def _wait_for(paths: list[Path], key: str, procs: list[subprocess.Popen[bytes]], within_s: float,
                    value: Any = True) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within_s
    while True:
        found = [next((d for d in json_lines(p) if d.get(key) == value), None) for p in paths]
        if all(found):
            return [f for f in found if f is not None]
        for p, path in zip(procs, paths, strict=True):
            if p.poll() is not None:
                raise RuntimeError(f"{path.name}: exited with {p.returncode}: {path.read_text()[-800:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {key!r} from {sum(f is None for f in found)} processes in {within_s} s")
        await asyncio.sleep(0.1)


async def _stored(db: InfluxWriter, site: str, expected: dict[str, int], within_s: float) -> dict[str, tuple[int, int]]:
    """Points and the sum of their seq per measurement, as InfluxDB counts them (retried while it is busy)."""
    deadline = time.monotonic() + within_s
    out: dict[str, tuple[int, int]] = {}
    while True:
        try:
            for m in MEASUREMENTS:
                rows = await db.rows(f"SELECT count(seq), sum(seq) FROM \"{m}\" WHERE site = '{site}'")
                out[m] = (int(rows[0]["count"]), int(rows[0]["sum"])) if rows else (0, 0)
        except InfluxError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)
            continue
        if all(out[m][0] >= n for m, n in expected.items()) or time.monotonic() > deadline:
            return out
        await asyncio.sleep(2.0)


async def _settle(probe: Probe, want: dict[str, int], stall_s: float) -> None:
    """Until every summary and alarm is visible, or nothing new arrived for ``stall_s`` (then what is
    missing is lost, not late)."""
    seen, changed = -1, time.monotonic()
    while any(probe.arrived(st) < n for st, n in want.items()):
        now_seen = sum(probe.arrived(st) for st in want)
        if now_seen != seen:
            seen, changed = now_seen, time.monotonic()
        elif time.monotonic() - changed > stall_s:
            return
        await asyncio.sleep(0.5)


def _stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def run_fleet(gateways: int, beds: int, minutes: int, workers: int = 1, raw: bool = False,
                    speed: float = 1.0, publishers: int = 2, influx_pause_s: float = 0.0,
                    receive_maximum: int = 2000, status_s: float | None = None,
                    settle_s: float = 60.0, contract: int = 2) -> dict[str, Any]:
    site = "fleet"
    status_s = status_s if status_s is not None else max(1.0, 10.0 / speed)  # every 10 emulated seconds, >= 1 s
    keep = os.environ.get("PULSEGATE_BENCH_KEEP")  # a folder: keep the logs and data there
    with tempfile.TemporaryDirectory(prefix="pg-bench-fleet-", dir=keep) as d:
        tmp = Path(d)
        mq = Mosquitto(tmp / "mq").start()
        idb = Influxd(tmp / "influx", data_conf=INFLUX_DATA_CONF).start()
        db = InfluxWriter(idb.url, "fleet", timeout_s=300)
        load_before = os.getloadavg()[0]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            await db.create_database()
            wouts = [tmp / f"ingest{k}.log" for k in range(workers)]
            ingest = [_spawn(["cloud.ingest_main", "--port", str(mq.port), "--influx-url", idb.url, "--database",
                              "fleet", "--client-id", f"fleet-ingest-{k}", "--group", "fleet", "--receive-maximum",
                              str(receive_maximum), "--deadletter-dir", str(tmp / f"dl{k}")], wouts[k])
                      for k in range(workers)]
            procs += ingest
            await _wait_for(wouts, "event", ingest, 60, value="ingest_connected")
            n_pub = max(1, min(publishers, gateways))
            per = -(-gateways // n_pub)
            pouts = [tmp / f"gateways{i}.log" for i in range(n_pub)]
            pubs = []
            for i in range(n_pub):
                first, count = i * per, min(per, gateways - i * per)
                (tmp / f"gw{i}").mkdir()
                pubs.append(_spawn(["bench.fleet_gateways", "--port", str(mq.port), "--site", site, "--first",
                                    str(first), "--count", str(count), "--total", str(gateways), "--beds", str(beds),
                                    "--minutes", str(minutes), "--speed", str(speed), "--status-s", str(status_s),
                                    "--dir", str(tmp / f"gw{i}"), "--contract", str(contract),
                                    *(["--raw"] if raw else [])], pouts[i], stdin=True))
            procs += pubs
            await _wait_for(pouts, "ready", pubs, 60 + gateways / 20)
            assert mq.proc is not None and idb.proc is not None
            probe = Probe(db, site, {"ingest": [p.pid for p in ingest], "broker": [mq.proc.pid],
                                     "influxd": [idb.proc.pid], "gateways": [p.pid for p in pubs]})
            start = time.time() + 1.0
            for p in pubs:
                assert p.stdin is not None
                p.stdin.write(f"{start}\n".encode())
                p.stdin.flush()
            probe_task = asyncio.create_task(probe.run())
            pause: dict[str, Any] = {}
            if influx_pause_s > 0:
                await asyncio.sleep(max(0.0, start - time.time()) + minutes * 60 / speed / 3)
                pause = await _pause(idb.proc, influx_pause_s, probe)
            done = await _wait_for(pouts, "done", pubs, minutes * 60 / speed + settle_s + influx_pause_s + 600)
            expected: dict[str, int] = {}
            seq_sum: dict[str, int] = {}
            for x in done:
                for m, n in x["expected_points"].items():
                    expected[m] = expected.get(m, 0) + n
                    seq_sum[m] = seq_sum.get(m, 0) + x["expected_seq_sum"][m]
            # wait (cheaply: the probe's per-gateway counts) until every summary and alarm is visible
            want = {st: sum(len(x["appended"][g][st]) for x in done for g in x["appended"])
                    for st in ("summaries", "alarms")}
            await _settle(probe, want, settle_s)
            await asyncio.sleep(2 * probe.every_s)  # raw batches are not probed: give the last ones a moment
            probe.stop.set()
            await probe_task
            got = await _stored(db, site, expected, settle_s)
            status = await probe.status_backlog(start)
        finally:
            _stop_all(procs)
            await db.close()
            idb.stop()
            mq.stop()
            for p in procs:
                _close(p.stdin)
    out = _result(gateways, beds, minutes, workers, raw, speed, expected, seq_sum, got, done, probe, start, pause,
                  status)
    out["contract"] = contract
    out["receipts"] = sum(x.get("receipts", 0) for x in done)  # receipt messages the fleet received
    out["receipted"] = sum(x.get("receipted", 0) for x in done)  # records they released
    out["receipt_errors"] = sum(x.get("receipt_errors", 0) for x in done)
    out["load_average_1m"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]  # the neighbours: before, after
    return out


def _close(f: IO[bytes] | None) -> None:
    if f is not None:
        try:
            f.close()
        except OSError:
            pass


async def _pause(proc: subprocess.Popen[bytes], seconds: float, probe: Probe) -> dict[str, Any]:
    os.kill(proc.pid, signal.SIGSTOP)
    began = time.time()
    try:
        await asyncio.sleep(seconds)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    return {"influx_paused_from": began, "influx_paused_s": seconds, "resumed_at": time.time()}


def _result(gateways: int, beds: int, minutes: int, workers: int, raw: bool, speed: float,
            expected: dict[str, int], seq_sum: dict[str, int], got: dict[str, tuple[int, int]],
            done: list[dict[str, Any]], probe: Probe, start: float, pause: dict[str, Any],
            status: dict[str, Any]) -> dict[str, Any]:
    lost = sum(max(0, n - got[m][0]) for m, n in expected.items())
    dup = sum(max(0, got[m][0] - n) for m, n in expected.items())
    exact = all(got[m][1] == seq_sum[m] for m in expected)
    points = sum(got[m][0] for m in expected)
    appended: dict[str, dict[str, list[float]]] = {}
    for x in done:
        appended.update(x["appended"])
    lat = latencies(appended, probe.arrivals)
    end = probe.last_arrival or time.time()
    window = max(1e-3, end - start)
    messages = sum(x["acked"] for x in done)
    cpu = {k: round(100 * cpu_s(v) / window, 1) for k, v in probe.cpu.items()}
    return {
        "gateways": gateways, "beds_per_gateway": beds, "minutes": minutes, "workers": workers, "raw": raw,
        "speed": speed, "wall_s": round(window, 1),
        "points": points, "points_per_s": round(points / window), "messages_per_s": round(messages / window, 1),
        "ingest_cpu_percent": cpu["ingest"], "broker_cpu_percent": cpu["broker"],
        "influxd_cpu_percent": cpu["influxd"], "gateways_cpu_percent": cpu["gateways"],
        "end_to_end_p50_s": pctl(lat, 50), "end_to_end_p99_s": pctl(lat, 99), "end_to_end_max_s": pctl(lat, 100),
        "latency_samples": len(lat), "latency_resolution_s": probe.every_s,
        "lost": lost, "duplicates": dup, "seq_sums_match": exact,
        "ingest_rss_mb_max": probe.rss_max_mb("ingest"), "broker_rss_mb_max": probe.rss_max_mb("broker"),
        "refused": sum(x["refused"] for x in done),
        **({"influx_pause_s": pause["influx_paused_s"]} if pause else {}),
        **status,
    }
