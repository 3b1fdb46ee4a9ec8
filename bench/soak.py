"""`pulsegate bench soak --beds 64 --hours H --json`: a ward gateway for hours, with faults at intervals.

A private mosquitto and influxd, an ingest worker process (``cloud.ingest_main``)
and a gateway process (``bench.outbox_driver --profile ward``: every second raw
numerics, a summary and scores of N beds, an alarm every 10 s). Every
``fault_every_s`` one fault, in turn: broker stopped and restarted, broker
killed -9, ingest worker killed -9 and restarted, ingest down for 20 s while
the broker keeps the messages. Every ``sample_s`` the gateway process's
resident memory and open files and the outbox's size on disk are sampled.
At the end the gateway drains (everything receipted) and InfluxDB must hold
exactly what it produced (points and sum of ``seq`` per measurement).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.localservices import Influxd, Mosquitto
from bench.procs import json_lines, kill, spawn, wait_exit
from bench.reliability import GATEWAY, _loss, _settle
from cloud.influx import InfluxWriter

FAULTS = ("broker_restart", "broker_kill", "ingest_kill", "ingest_down")


class _Cloud:
    def __init__(self, tmp: Path, influx: Influxd) -> None:
        self.tmp, self.influx = tmp, influx
        self.mq = Mosquitto(tmp / "mq").start()
        self.port = self.mq.port
        self.ingest: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.start_ingest()

    def start_ingest(self) -> None:
        self.starts += 1
        self.ingest = spawn("cloud.ingest_main", "--port", str(self.port), "--influx-url", self.influx.url,
                            "--database", "soak", "--client-id", "soak-ingest", "--group", "soak",
                            log=self.tmp / "ingest.log")

    async def fault(self, name: str) -> None:
        if name in ("broker_restart", "broker_kill"):
            self.mq.stop(kill=name == "broker_kill")
            await asyncio.sleep(5.0)
            self.mq = Mosquitto(self.tmp / "mq", port=self.port).start()
        elif name == "ingest_kill":
            kill(self.ingest)
            await asyncio.sleep(2.0)
            self.start_ingest()
        else:
            kill(self.ingest, signal.SIGTERM)
            await asyncio.sleep(20.0)
            self.start_ingest()

    def close(self) -> None:
        kill(self.ingest, signal.SIGTERM)
        self.mq.stop()


def _sample(proc: psutil.Process, outbox: Path, began: float, tick: dict[str, Any] | None) -> dict[str, Any]:
    size = sum(p.stat().st_size for p in outbox.parent.glob(outbox.name + "*") if p.exists())
    return {"t_s": round(time.monotonic() - began, 1), "rss_mb": round(proc.memory_info().rss / 2**20, 1),
            "open_files": proc.num_fds(), "outbox_bytes": size,
            "backlog": tick.get("backlog") if tick else None, "unreceipted": tick.get("unreceipted") if tick else None}


def _slope_mb_per_h(samples: list[dict[str, Any]]) -> float:
    """Least-squares slope of RSS over the second half of the run (the first half includes warm-up)."""
    half = samples[len(samples) // 2 :]
    if len(half) < 2:
        return 0.0
    xs = [s["t_s"] / 3600 for s in half]
    ys = [s["rss_mb"] for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den, 2) if den else 0.0


async def bench_soak(beds: int, hours: float, fault_every_s: float = 300.0, sample_s: float = 10.0) -> dict[str, Any]:
    duration = hours * 3600
    with tempfile.TemporaryDirectory(prefix="pg-bench-soak-") as d:
        tmp = Path(d)
        influx = Influxd(tmp / "influx").start()
        db = InfluxWriter(influx.url, "soak")
        await db.create_database()
        cloud = _Cloud(tmp, influx)
        log = tmp / "gateway.jsonl"
        outbox = tmp / "outbox.sqlite"
        gw = spawn("bench.outbox_driver", "--db", str(outbox), "--gateway", GATEWAY, "--port", str(cloud.port),
                   "--profile", "ward", "--beds", str(beds), "--duration", str(duration), log=log)
        samples: list[dict[str, Any]] = []
        faults: list[str] = []
        began = time.monotonic()
        try:
            while not any("ready" in x for x in json_lines(log)):
                if gw.poll() is not None or time.monotonic() - began > 60:
                    raise RuntimeError("gateway driver did not start")
                await asyncio.sleep(0.1)
            began = time.monotonic()
            proc = psutil.Process(gw.pid)
            next_fault = began + fault_every_s
            while time.monotonic() - began < duration and gw.poll() is None:
                ticks = [x for x in json_lines(log)[-5:] if "tick" in x]
                samples.append(await asyncio.to_thread(_sample, proc, outbox, began, ticks[-1] if ticks else None))
                if time.monotonic() >= next_fault and time.monotonic() - began < duration - 60:
                    name = FAULTS[len(faults) % len(FAULTS)]
                    faults.append(name)
                    await cloud.fault(name)
                    next_fault = time.monotonic() + fault_every_s
                await asyncio.sleep(sample_s)
            rc = await wait_exit(gw, 600)
            done = [x for x in json_lines(log) if "drained" in x]
            if rc != 0 or not done:
                raise RuntimeError(f"gateway driver exited with {rc} without draining")
            got = await _settle(db, done[-1]["expected_points"], 60)
        finally:
            kill(gw)
            cloud.close()
            await db.close()
            influx.stop()
    lost, dup, exact = _loss(done[-1], got)
    rss = [s["rss_mb"] for s in samples]
    fds = [s["open_files"] for s in samples]
    return {
        "beds": beds, "hours": hours, "faults": len(faults), "fault_kinds": sorted(set(faults)),
        "produced": sum(done[-1]["expected_points"].values()), "lost": lost, "duplicates": dup,
        "seq_sums_match": exact, "resent": done[-1].get("resent", 0),
        "rss_mb_first": rss[0] if rss else None, "rss_mb_last": rss[-1] if rss else None,
        "rss_mb_max": max(rss, default=None), "rss_slope_mb_per_h_second_half": _slope_mb_per_h(samples),
        "open_files_first": fds[0] if fds else None, "open_files_last": fds[-1] if fds else None,
        "open_files_max": max(fds, default=None),
        "outbox_bytes_max": max((s["outbox_bytes"] for s in samples), default=None),
        "backlog_max": max((s["backlog"] or 0 for s in samples), default=None),
        "samples": samples[:: max(1, len(samples) // 60)],  # about 60 points over the run
    }
