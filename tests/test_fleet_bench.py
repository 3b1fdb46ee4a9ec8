"""`pulsegate bench fleet`, tiny: 5 emulated gateways, 1 accelerated minute, through the real broker,
two ingest worker processes and influxd; nothing lost or doubled, every gateway's status stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def test_fleet_bench_tiny_run_loses_and_doubles_nothing() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "pulsegate", "bench", "fleet", "--gateways", "5",
                          "--beds-per-gateway", "4", "--minutes", "2", "--speed", "30", "--workers", "2",
                          "--json"], capture_output=True, text=True, timeout=240, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:] + out.stdout[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["gateways"] == 5 and r["workers"] == 2
    assert r["lost"] == 0 and r["duplicates"] == 0 and r["seq_sums_match"]
    assert r["points"] == 5 * 2 * 4 * 8 + 1  # two summaries of 4 beds x 8 parameters each, one alarm
    assert r["latency_samples"] == 11 and r["end_to_end_p99_s"] is not None
    assert r["status_gateways"] == 5
    # contract v2: every record left its gateway's outbox on an ingest receipt, none at the PUBACK alone
    assert r["contract"] == 2 and r["receipt_errors"] == 0
    assert r["receipted"] == 5 * 2 + 1 and r["receipts"] >= 5
    assert r["points_per_s"] > 0 and r["messages_per_s"] > 0
    assert r["ingest_cpu_percent"] > 0 and r["broker_cpu_percent"] >= 0  # the broker may round to 0.0 here
