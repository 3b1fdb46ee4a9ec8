"""`pulsegate bench replay`: it replays a generated ward through the real pipeline and prints its figures
(no timing is asserted: the figures are for people)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_replay_prints_throughput_and_stage_latency() -> None:
    res = subprocess.run([sys.executable, "-m", "pulsegate", "bench", "replay", "--patients", "2", "--hours", "0.5",
                          "--latency-rows", "2000", "--json"], cwd=REPO, capture_output=True, timeout=300,
                         check=False, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads(res.stdout)
    t = r["throughput"]
    assert t["rows"] > 2 * 1800 * 5 and t["patients"] == 2 and t["rows_per_cpu_s"] > 0
    lat = r["stage_on_sample"]["all_samples"]
    assert lat["n"] > 1000 and lat["p50_us"] <= lat["p99_us"] <= lat["max_us"]
