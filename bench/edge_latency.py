"""``pulsegate bench edge``: emulated monitors and wearables at real rates through the real pipeline.

In one process: a generator task plays N bedside monitors (heart rate, SpO2 and
respiration rate at 1 Hz each, NIBP every 5 min, temperature every 10 min)
and M wearables (heart rate at 1 Hz), each on its own phase within the second,
into ``Pipeline.feed`` with ``recv_mono`` stamped at emission (the moment a
transport would have decoded it). Every monitor alternates 15 s of
tachycardia (HR 175: the smart default's life-threatening path alarms after
7 s) with 15 s of normal values, every wearable does the same on a 120 s
cycle, so alarms are raised and cleared all the time. The
ClinicalStage runs NEWS2, thresholds, technical checks and the anomaly model
(batched; scored at every minute bucket from the start, not only after 10
minutes of history as in production, so that the model's cost is in the
figures). Alarms go to a real mosquitto (bench.localservices) through
the LocalAlarmPublisher; the latency is sample received -> PUBACK of the
alarm's publish on the local bus.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.localservices import Mosquitto
from clinical.alarms.model import Event
from clinical.alarms.profiles import ClinicalConfig
from clinical.sample import Sample
from clinical.stage import ClinicalStage
from edge.alarm_bus import Delivered, LocalAlarmPublisher
from edge.pipeline import Pipeline

CYCLE_MONITOR = 30
TACHY_HR = 175.0
CYCLE_WEARABLE = 120


@dataclass(slots=True)
class _Source:
    bed: str
    wearable: bool
    phase: float
    offset: int
    base_hr: float


def _sources(beds: int, wearables: int, rng: np.random.Generator) -> list[_Source]:
    out = [_Source(f"bed-{i:04d}", False, float(rng.random()), int(rng.integers(0, CYCLE_MONITOR)),
                   float(rng.uniform(60, 95))) for i in range(beds)]
    out += [_Source(f"wear-{i:04d}", True, float(rng.random()), int(rng.integers(0, CYCLE_WEARABLE)),
                    float(rng.uniform(60, 95))) for i in range(wearables)]
    out.sort(key=lambda s: s.phase)
    return out


async def _run(beds: int, wearables: int, duration: float, model_dir: Path | None, port: int,
               broker_pid: int | None) -> dict[str, Any]:
    scorer = None
    if model_dir is not None:
        from clinical.anomaly import VitalsAnomalyModel

        scorer = VitalsAnomalyModel(model_dir)
        scorer.min_buckets = 0
    lat_total: list[float] = []
    lat_raise: list[float] = []

    def delivered(d: Delivered) -> None:
        if d.update.event is Event.RAISED:
            a = d.update.alarm
            lat_total.append((d.delivered_mono - a.recv_mono) * 1000.0)
            lat_raise.append((a.raised_mono - a.recv_mono) * 1000.0)

    pub = LocalAlarmPublisher("127.0.0.1", port, "bench", on_delivered=delivered, queue_size=10_000)
    stage = ClinicalStage(ClinicalConfig(), sinks=[pub.offer], scorer=scorer)
    pipe = Pipeline([stage], tick_s=0.25)
    await pub.start()
    await pipe.start()
    pub_task = asyncio.create_task(pub.run(), name="bench.publisher")
    pipe_task = asyncio.create_task(pipe.run(), name="bench.pipeline")
    for _ in range(100):
        if pub.connected:
            break
        await asyncio.sleep(0.02)
    rng = np.random.default_rng(7)
    order = _sources(beds, wearables, rng)
    proc = psutil.Process()
    broker = psutil.Process(broker_pid) if broker_pid else None
    cpu0, b0 = proc.cpu_times(), broker.cpu_times() if broker else None
    rss_max = proc.memory_info().rss
    t0 = time.monotonic()
    wall0 = time.time()
    end = t0 + duration
    i = sec = 0
    fed = 0
    next_rss = t0 + 1.0
    feed = pipe.feed
    n = len(order)
    while True:
        now = time.monotonic()
        if now >= end:
            break
        while n:
            src = order[i]
            if t0 + sec + src.phase > now:
                break
            recv = time.monotonic()
            wall = wall0 + (recv - t0)
            if src.wearable:
                hr = TACHY_HR if (sec + src.offset) % CYCLE_WEARABLE < 15 else src.base_hr + (sec % 5)
                feed(Sample(src.bed, "heart_rate", hr, "/min", recv, wall, device="wearable"))
                fed += 1
            else:
                hr = TACHY_HR if (sec + src.offset) % CYCLE_MONITOR < 15 else src.base_hr + (sec % 5)
                feed(Sample(src.bed, "heart_rate", hr, "/min", recv, wall, device="monitor"))
                feed(Sample(src.bed, "spo2", 97.0 - (sec % 3), "%", recv, wall, device="monitor"))
                feed(Sample(src.bed, "resp_rate", 15.0 + (sec % 4), "/min", recv, wall, device="monitor"))
                fed += 3
                if (sec + src.offset) % 300 == 0:
                    feed(Sample(src.bed, "nibp_sys", 120.0 + (sec % 7), "mm[Hg]", recv, wall, device="monitor"))
                    fed += 1
                if (sec + src.offset) % 600 == 0:
                    feed(Sample(src.bed, "temperature", 36.8, "Cel", recv, wall, device="monitor"))
                    fed += 1
            i += 1
            if i == n:
                i = 0
                sec += 1
        if now >= next_rss:
            rss_max = max(rss_max, proc.memory_info().rss)
            next_rss = now + 1.0
        await asyncio.sleep(0.002)
    elapsed = time.monotonic() - t0
    cpu1 = proc.cpu_times()
    b1 = broker.cpu_times() if broker else None
    rss_max = max(rss_max, proc.memory_info().rss)
    await asyncio.sleep(0.3)  # let the last publishes complete
    await pipe.stop()
    await pub.stop()
    await asyncio.wait_for(asyncio.gather(pipe_task, pub_task), 10)
    ncpu = os.cpu_count() or 1
    used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)

    def pct(xs: list[float], q: float) -> float | None:
        return round(float(np.percentile(xs, q)), 3) if xs else None

    out: dict[str, Any] = {
        "beds": beds,
        "wearables": wearables,
        "duration_s": round(elapsed, 2),
        "samples_per_s": round(fed / elapsed, 1),
        "alarms_raised": stage.manager.raised_total,
        "alarms_delivered": len(lat_total),
        "local_bus_published": pub.published,
        "local_bus_dropped": pub.dropped,
        "alarm_latency_ms_p50": pct(lat_total, 50),
        "alarm_latency_ms_p99": pct(lat_total, 99),
        "alarm_latency_ms_max": pct(lat_total, 100),
        "raise_latency_ms_p99": pct(lat_raise, 99),
        "cpu_percent": round(used / elapsed / ncpu * 100.0, 2),
        "cpu_percent_of_one_core": round(used / elapsed * 100.0, 2),
        "cpu_count": ncpu,
        "rss_mb": round(rss_max / 2**20, 1),
        "anomaly_model": None if scorer is None else scorer.version,
        "anomaly_invokes": stage.anomaly_batches,
        "anomaly_beds_scored": stage.anomaly_beds_scored,
    }
    if broker and b0 and b1:
        out["broker_cpu_percent"] = round(((b1.user - b0.user) + (b1.system - b0.system)) / elapsed / ncpu * 100, 2)
    return out


def run_bench(beds: int, wearables: int, duration: float, model_dir: Path | None,
              find_max: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pg-bench-edge-") as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto").start()
        try:
            pid = broker.proc.pid if broker.proc else None
            result = asyncio.run(_run(beds, wearables, duration, model_dir, broker.port, pid))
            if find_max:
                result["max_beds_search"] = _find_max(beds, wearables, duration, model_dir, broker.port, pid)
                passing = [r["beds"] for r in result["max_beds_search"] if _ok(r)]
                result["max_beds_p99_under_100ms"] = max(passing) if passing else None
        finally:
            broker.stop()
    return result


def _ok(r: dict[str, Any]) -> bool:
    p99 = r.get("alarm_latency_ms_p99")
    return p99 is not None and p99 < 100.0


def _find_max(start: int, wearables: int, duration: float, model_dir: Path | None, port: int,
              pid: int | None) -> list[dict[str, Any]]:
    """Double the beds until p99 >= 100 ms, then bisect twice between the last pass and the first fail.

    Each run lasts at least 65 s so that it includes a minute boundary, where every bed's window is
    scored by the anomaly model.
    """
    duration = max(duration, 65.0)
    keys = ("beds", "samples_per_s", "alarm_latency_ms_p50", "alarm_latency_ms_p99", "cpu_percent", "rss_mb",
            "anomaly_invokes")
    runs: list[dict[str, Any]] = []
    lo, hi = start, None
    n = start * 2
    while n <= 65536:
        r = asyncio.run(_run(n, wearables, duration, model_dir, port, pid))
        runs.append({k: r[k] for k in keys})
        if not _ok(r):
            hi = n
            break
        lo = n
        n *= 2
    for _ in range(2):
        if hi is None:
            break
        mid = int(math.sqrt(lo * hi))
        if mid in (lo, hi):
            break
        r = asyncio.run(_run(mid, wearables, duration, model_dir, port, pid))
        runs.append({k: r[k] for k in keys})
        if _ok(r):
            lo = mid
        else:
            hi = mid
    return runs
