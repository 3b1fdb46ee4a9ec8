"""``pulsegate bench video``: throughput and latency of the whole video pipeline.

Latency is frame captured (read and decoded by the grabber) -> overlay drawn
on it. Figures come from the real pipeline: OpenCV capture thread with the
latest-frame policy, ModelRunner inference, post-processing, smoothing,
overlay. ``cpu_percent`` is this process's CPU time over wall time (100 = one
full core).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from clinical.endoscopy.postprocess import PolypFinding
from clinical.endoscopy.segmodel import load_verified
from edge.video.capture import Pace
from edge.video.pipeline import VideoPipeline


def bench_video(
    source: str, model_dir: Path, trusted_keys: list[Path], frames: int, threads: int = 2,
    pace: Pace = "native", warmup: int = 10,
) -> dict[str, Any]:
    import psutil

    runner, manifest = load_verified(model_dir, trusted_keys, threads)
    findings: list[PolypFinding] = []
    pipe = VideoPipeline(source, runner, findings.append, "bench", pace=pace)
    pipe.open()
    try:
        grabber = pipe.grabber
        assert grabber is not None
        pipe.work(findings.append, max_frames=warmup)
        pipe.stats.latencies_ms = type(pipe.stats.latencies_ms)(maxlen=frames)
        proc = psutil.Process()
        cpu0 = proc.cpu_times()
        dropped0, captured0 = grabber.slot.dropped, grabber.slot.captured
        t0 = time.monotonic()
        pipe.work(findings.append, max_frames=frames)
        elapsed = time.monotonic() - t0
        cpu1 = proc.cpu_times()
        lat = np.fromiter(pipe.stats.latencies_ms, float)
        cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        return {
            "frames": int(lat.size),
            "fps": round(lat.size / elapsed, 1),
            "latency_ms_p50": round(float(np.percentile(lat, 50)), 1),
            "latency_ms_p95": round(float(np.percentile(lat, 95)), 1),
            "latency_ms_max": round(float(lat.max()), 1),
            "dropped_frames": grabber.slot.dropped - dropped0,
            "captured_frames": grabber.slot.captured - captured0,
            "cpu_percent": round(100.0 * cpu_s / elapsed, 1),
            "source": Path(source).name if grabber.kind == "file" else grabber.kind,
            "source_size": list(grabber.size),
            "source_fps": round(grabber.source_fps, 2),
            "pace": pace,
            "model": f"{manifest.name} {manifest.version}",
            "model_input": list(runner.input_shape),
            "threads": threads,
            "findings": len(findings),
            "cores": psutil.cpu_count(),
        }
    finally:
        pipe.close()
