"""Scheduled retraining (issue 12, slice 4): the lock two processes really contend for, and a scheduled run
against a real influxd through the cloud daemon built from its TOML."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.localservices import Influxd
from cloud.config import load_cloud_config
from cloud.daemon import CloudDaemon
from cloud.retrain_schedule import LockHeld, RetrainLock

REPO = Path(__file__).resolve().parents[1]
HOLDER = """
import sys, time
from pathlib import Path
from cloud.retrain_schedule import RetrainLock
lock = RetrainLock(Path(sys.argv[1]), "node-a")
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
"""


def test_two_processes_contend_for_the_retrain_lock(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "retrain.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        other = RetrainLock(path, "node-b")
        with pytest.raises(LockHeld, match="node-a"):  # another process holds it: refused, and says who
            other.acquire()
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        holder.wait(30)
        with other:  # free again: this process gets it
            assert json.loads(path.read_text())["node"] == "node-b"
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.integration
async def test_scheduled_retrain_runs_in_the_cloud_daemon_and_skips_when_locked(
        tmp_path: Path, influx: Influxd, unique: str) -> None:
    toml = tmp_path / "cloud.toml"
    toml.write_text(f"""
[cloud]
id = "c-{unique}"
state_dir = "{tmp_path / 'state'}"
[api]
port = 0
[ingest]
port = 1
deadletter_dir = "{tmp_path / 'dead'}"
[influx]
url = "{influx.url}"
database = "{unique}"
[retrain]
enabled = true
interval_h = 24
first_after_s = 0
out_dir = "{tmp_path / 'candidates'}"
active_dir = "{REPO / 'models' / 'vitals-anomaly' / '1.0.0'}"
lock_file = "{tmp_path / 'shared' / 'retrain.lock'}"
""")
    daemon = CloudDaemon(load_cloud_config(toml), tmp_path)
    sched = daemon.retrain
    assert sched is not None and sched in daemon.components()
    await daemon.influx.create_database()
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop, install_signals=False))
    try:
        deadline = time.monotonic() + 120
        while sched.last is None:
            assert time.monotonic() < deadline, "the scheduled retrain did not run"
            await asyncio.sleep(0.2)
        assert sched.last["outcome"] == "too_little_data"  # an empty fleet: a message, no model
        report = json.loads((tmp_path / "state" / "retrain" / "last.json").read_text())
        assert report["outcome"] == "too_little_data" and report["node"] == f"c-{unique}"
        assert not (tmp_path / "candidates").exists()
        with RetrainLock(tmp_path / "shared" / "retrain.lock", "other-node"):  # another node is training
            skipped = await sched.run_once()
        assert skipped["outcome"] == "skipped" and "other-node" in skipped["reason"] and sched.skipped_locked == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
