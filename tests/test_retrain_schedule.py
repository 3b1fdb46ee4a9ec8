"""Scheduled retraining (issue 12, slice 4): the lock two processes really contend for, a scheduled run
against a real influxd through the cloud daemon built from its TOML, two separate `pulsegate cloud run`
processes with their own configs naming one lock path (only one trains, the other skips naming it), and
the lock's scope (shared or node-local) read from the mount table."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.localservices import Influxd, Mosquitto
from cloud.config import load_cloud_config
from cloud.daemon import CloudDaemon
from cloud.retrain_schedule import LockHeld, RetrainLock, lock_scope

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


def retrain_toml(d: Path, node: str, influx: Influxd, db: str, lock: Path, active: Path, *, ingest: str,
                 extra: str = "") -> Path:
    """A cloud daemon's TOML with scheduled retraining (first run at start) and the given lock path."""
    toml = d / "cloud.toml"
    toml.write_text(f"""
[cloud]
id = "{node}"
state_dir = "{d / 'state'}"
[api]
port = 0
[ingest]
{ingest}
deadletter_dir = "{d / 'dead'}"
[influx]
url = "{influx.url}"
database = "{db}"
[retrain]
enabled = true
interval_h = 24
first_after_s = 0
out_dir = "{d / 'candidates'}"
active_dir = "{active}"
lock_file = "{lock}"
{extra}
""")
    return toml


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
    toml = retrain_toml(tmp_path, f"c-{unique}", influx, unique, tmp_path / "shared" / "retrain.lock",
                        REPO / "models" / "vitals-anomaly" / "1.0.0", ingest="port = 1")
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


MOUNTS = """22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 27 0:50 / /srv/shared rw,relatime - nfs4 fs1:/export rw,vers=4.2,hard,proto=tcp,local_lock=none,addr=10.0.0.5
41 27 0:51 / /srv/nolock rw,relatime - nfs fs1:/old rw,vers=3,nolock,local_lock=all,addr=10.0.0.5
42 27 0:52 / /srv/ceph rw,relatime - ceph 10.0.0.7:/ rw,name=pulsegate
"""


def test_lock_scope_tells_a_shared_lock_from_a_node_local_one() -> None:
    shared = lock_scope(Path("/srv/shared/pulsegate/retrain.lock"), MOUNTS)
    assert shared["shared"] is True and shared["fstype"] == "nfs4" and shared["mount"] == "/srv/shared"
    assert lock_scope(Path("/srv/ceph/retrain.lock"), MOUNTS)["shared"] is True
    nolock = lock_scope(Path("/srv/nolock/retrain.lock"), MOUNTS)
    assert nolock["shared"] is False and nolock["why"] == "NFS mounted local_lock=all: flock is local to this client"
    local = lock_scope(Path("/var/lib/pulsegate-cloud/retrain.lock"), MOUNTS)
    assert local == {"fstype": "ext4", "mount": "/", "shared": False,
                     "why": "ext4 is local to this node: other cloud nodes cannot see the lock"}
    assert lock_scope(Path("/x/retrain.lock"), "garbage\n")["shared"] is None


@pytest.mark.integration
def test_two_cloud_daemon_processes_with_their_own_configs_train_one_at_a_time(
        tmp_path: Path, broker: Mosquitto, influx: Influxd, unique: str) -> None:
    from bench.fleet_history import HistoryOptions, fleet_history, write_influx
    from cloud.influx import InfluxConfig, InfluxWriter
    from cloud.retention import ensure_schema

    async def fill() -> None:  # the fleet's history, in the retention policy the daemons read (raw, DEFAULT)
        w = InfluxWriter(influx.url, unique)
        try:
            await w.create_database()
            await ensure_schema(w, InfluxConfig(url=influx.url, database=unique))
            h = fleet_history(HistoryOptions(gateways=3, patients_per_gateway=8, hours=8), time.time())
            assert await write_influx(w, h) > 1000
        finally:
            await w.close()

    asyncio.run(fill())
    lock = tmp_path / "shared" / "retrain.lock"  # the one path both nodes' configs name
    procs: dict[str, subprocess.Popen[str]] = {}
    for node in ("node-a", "node-b"):
        d = tmp_path / node
        d.mkdir()
        toml = retrain_toml(d, f"{node}-{unique}", influx, unique, lock, REPO / "models" / "vitals-anomaly" / "2.0.0",
                            ingest=f'host = "127.0.0.1"\nport = {broker.port}\nclient_id = "ingest-{node}-{unique}"\n'
                                   f'group = "g{unique}"', extra="synthetic = 6\nepochs = 1")
        procs[node] = subprocess.Popen([sys.executable, "-m", "pulsegate", "cloud", "run", "--config", str(toml)], cwd=REPO, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)
    try:
        outcome: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + 600
        while len(outcome) < 2:  # each node's first scheduled run: a retrain, or a skip naming the holder
            assert time.monotonic() < deadline, f"scheduled runs not done: {outcome}"
            for node, p in procs.items():
                assert p.poll() is None, f"{node} exited: {p.stderr.read() if p.stderr else ''}"
                base = tmp_path / node / "state" / "retrain"
                for name in ("last.json", "last_skipped.json"):
                    if node not in outcome and (base / name).exists():
                        outcome[node] = json.loads((base / name).read_text())
            time.sleep(0.5)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    trained = [n for n, o in outcome.items() if o["outcome"] in ("passed", "refused")]
    skipped = [n for n, o in outcome.items() if o["outcome"] == "skipped"]
    assert len(trained) == 1 and len(skipped) == 1, json.dumps(outcome)[:3000]
    assert all(o["node"] == f"{n}-{unique}" for n, o in outcome.items())  # each node wrote its own state
    holder = f"{trained[0]}-{unique}"
    assert holder in str(outcome[skipped[0]]["reason"])  # the skip names the node that held the lock
    assert outcome[trained[0]]["lock"]["path"] == str(lock)  # type: ignore[index]
    assert not (tmp_path / skipped[0] / "candidates").exists()  # the skipping node trained nothing


def _scheduler(tmp_path: Path, **cfg: object) -> object:
    from cloud.retrain_schedule import RetrainScheduler, RetrainSection

    section = RetrainSection(enabled=True, out_dir=tmp_path / "candidates", lock_file=tmp_path / "retrain.lock",
                             active_dir=REPO / "models" / "vitals-anomaly" / "2.0.0", **cfg)
    return RetrainScheduler(section, "node-x", tmp_path / "state", influx=None, key_path=None)


async def test_training_runs_in_a_process_of_its_own_and_its_crash_is_an_outcome(tmp_path: Path) -> None:
    """The retrain runs in a spawned process: its outcome comes back over a pipe; a killed process (an
    out-of-memory kill, a segfault in TensorFlow) or one past max_hours is a `failed` outcome, and the
    daemon's process goes on."""
    import os
    import signal

    from cloud.retrain_schedule import RetrainScheduler
    from cloud.training.fleet_data import FleetData
    from cloud.training.retrain import RetrainOptions

    sched = _scheduler(tmp_path)
    assert isinstance(sched, RetrainScheduler)
    opts = RetrainOptions(out_dir=tmp_path / "candidates", active_dir=sched.cfg.active_dir)
    empty = FleetData([], [], [])
    got = await sched._train(empty, opts)  # through the child: too little data, reported, not raised
    assert got["outcome"] == "too_little_data" and "patients" in got["reason"] and sched._proc is None

    async def kill_when_started() -> int:
        while sched._proc is None or sched._proc.pid is None:  # noqa: ASYNC110 - waiting for the child
            await asyncio.sleep(0.01)
        pid = sched._proc.pid
        os.kill(pid, signal.SIGKILL)
        return pid

    killer = asyncio.create_task(kill_when_started())
    crashed = await sched._train(empty, opts)
    pid = await killer
    assert crashed["outcome"] == "failed" and "exited with code -9" in crashed["reason"]
    assert pid != os.getpid()

    slow = _scheduler(tmp_path, max_hours=1e-5)  # 36 ms: less than a spawned interpreter needs to start
    assert isinstance(slow, RetrainScheduler)
    late = await slow._train(empty, opts)
    assert late["outcome"] == "failed" and "max_hours" in late["reason"]


def test_active_dir_names_a_version_or_the_newest_in_a_model_folder(tmp_path: Path) -> None:
    from cloud.retrain_schedule import active_model_dir
    from wire.model_manifest import newest_model_dir

    models = REPO / "models" / "vitals-anomaly"
    newest = newest_model_dir(REPO / "models", "vitals-anomaly")
    assert newest is not None and active_model_dir(models) == newest  # what the fleet runs after an update
    assert active_model_dir(models / "2.0.0") == models / "2.0.0"  # a version named in the TOML is kept
    assert active_model_dir(tmp_path / "empty") == tmp_path / "empty"  # the retrain then says it is missing
