"""Scheduled retraining in the cloud daemon (``[retrain]`` in its TOML), one node at a time.

Every ``interval_h`` (first run ``first_after_s`` after start) the daemon takes the retrain lock, reads the
fleet's data from its own InfluxDB and runs the retrain (cloud/training/retrain.py: gate, signing with
``key_file`` only on a pass); the report goes to ``{state_dir}/retrain/last.json`` and the log. A refused
gate or too little data is an outcome, not an error.

The training runs in a process of its own (``multiprocessing`` spawn: a fresh interpreter, no copy of the
daemon's threads or sockets), never in the daemon: TensorFlow's memory and threads are gone when it ends, a
crash or an out-of-memory kill there is a ``failed`` outcome while the ingest goes on, and a run longer
than ``max_hours`` is killed. Stopping the daemon stops the training.

The lock (:class:`RetrainLock`) is ``flock(LOCK_EX | LOCK_NB)`` on ``lock_file``: held per open file, so
two daemons on one machine (and even two holders in one process) really contend for it
(tests/test_retrain_schedule.py runs two processes). ACROSS NODES it means exactly what the file system
gives: with ``lock_file`` on shared storage whose locks are coherent between clients (Linux's NFS client
turns flock into an NFSv4/NLM lock since 2.6.12; CephFS and GlusterFS have their own), two cloud nodes
never train at once; on node-local disks each node has its own lock and they may. We chose a
shared-storage lock over a lease in InfluxDB because InfluxDB 1.x has no compare-and-set: two nodes
writing a "lease" point can both believe they hold it, while a file lock is either granted or not, and it
is released by the kernel when the holder dies (no expiry to tune). The holder's node id, pid and start
time are written into the file for the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from runtime.configbase import Section
from runtime.logs import get_logger
from runtime.supervisor import Tier
from wire.model_manifest import newest_model_dir

log = get_logger("cloud.retrain")


class RetrainSection(Section):
    """``[retrain]``: scheduled retraining of vitals-anomaly on the fleet's data."""

    enabled: bool = False
    interval_h: Annotated[float, Field(gt=0, le=24 * 90)] = 24.0
    first_after_s: Annotated[float, Field(ge=0)] = 600.0
    since: str = "30d"
    out_dir: Path = Path("/var/lib/pulsegate-cloud/candidates")
    active_dir: Path = Path("/usr/share/pulsegate/models/vitals-anomaly")  # a version, or the newest in it
    key_file: str | None = None  # signs a candidate that passes the gate (path or credential:NAME)
    lock_file: Path = Path("/var/lib/pulsegate-cloud/retrain.lock")  # on shared storage for several nodes
    synthetic: Annotated[int, Field(ge=0, le=2000)] = 40
    epochs: Annotated[int, Field(ge=1, le=100)] = 6
    max_hours: Annotated[float, Field(gt=0, le=48)] = 6.0  # a training process running longer is killed


SHARED_FS = ("nfs", "nfs4", "ceph", "fuse.ceph", "fuse.cephfs", "glusterfs", "fuse.glusterfs", "gfs2", "ocfs2")


def active_model_dir(path: Path) -> Path:
    """``path`` when it is a model version directory, else the newest version in it (the shipped model the
    fleet runs once an update installed it); ``path`` as given when it holds none (the retrain says why)."""
    if (path / "manifest.json").exists():
        return path
    return newest_model_dir(path.parent, path.name) or path


def lock_scope(path: Path, mountinfo: str | None = None) -> dict[str, Any]:
    """Where ``path``'s locks are seen: ``{"fstype", "mount", "shared", "why"}`` from /proc/self/mountinfo.

    ``shared`` is True for a cluster or network file system whose flock is coherent between clients (NFS
    unless mounted ``nolock`` or ``local_lock=flock|all``, which make flock local to the client; CephFS,
    GlusterFS, GFS2, OCFS2), False for anything else (the lock excludes only processes on this node), None
    when the mount table cannot be read."""
    target = os.path.realpath(path.parent if not path.is_dir() else path)
    try:
        text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    except OSError:
        return {"fstype": None, "mount": None, "shared": None, "why": "cannot read /proc/self/mountinfo"}
    best: tuple[str, str, set[str]] | None = None
    for row in text.splitlines():
        left, _, right = row.partition(" - ")
        f, r = left.split(), right.split()
        if len(f) < 6 or len(r) < 1:
            continue
        mount = f[4].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and (best is None or len(mount) >= len(best[0])):
            opts = set(f[5].split(",")) | (set(r[2].split(",")) if len(r) > 2 else set())
            best = (mount, r[0], opts)
    if best is None:
        return {"fstype": None, "mount": None, "shared": None, "why": f"no mount holds {target}"}
    mount, fstype, opts = best
    out: dict[str, Any] = {"fstype": fstype, "mount": mount}
    if fstype in ("nfs", "nfs4") and ({"nolock", "local_lock=flock", "local_lock=all"} & opts):
        why = sorted({"nolock", "local_lock=flock", "local_lock=all"} & opts)[0]
        return {**out, "shared": False, "why": f"NFS mounted {why}: flock is local to this client"}
    if fstype in SHARED_FS:
        return {**out, "shared": True, "why": f"{fstype}: flock is coherent between the nodes that mount it"}
    return {**out, "shared": False, "why": f"{fstype} is local to this node: other cloud nodes cannot see the lock"}


class LockHeld(Exception):
    """Another process holds the retrain lock; the message says who (as the holder wrote it)."""


class RetrainLock:
    def __init__(self, path: Path, node: str) -> None:
        self.path, self.node = path, node
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip()
            os.close(fd)
            raise LockHeld(f"retrain lock {self.path} is held ({holder or 'holder unknown'})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"node": self.node, "pid": os.getpid(), "since": time.time()}).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RetrainLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RetrainScheduler:
    """A cloud daemon component (not essential: a failing retrain never stops the ingest)."""

    name = "retrain-scheduler"
    tier = Tier.PIPELINE
    essential = False

    def __init__(self, cfg: RetrainSection, node: str, state_dir: Path, influx: Any, key_path: Path | None) -> None:
        self.cfg, self.node, self.influx, self.key_path = cfg, node, influx, key_path
        self.report_path = state_dir / "retrain" / "last.json"
        self.lock = RetrainLock(cfg.lock_file, node)
        self.runs = 0
        self.skipped_locked = 0
        self.last: dict[str, Any] | None = None
        self.scope: dict[str, Any] = {}
        self._stop = asyncio.Event()
        self._proc: BaseProcess | None = None

    async def start(self) -> None:
        self._stop.clear()
        self.scope = lock_scope(self.cfg.lock_file)
        if self.scope["shared"]:
            log.info("retrain_lock", path=str(self.cfg.lock_file), **self.scope)
        else:  # one node is fine; several nodes would each hold their own lock
            log.warning("retrain_lock_node_local", path=str(self.cfg.lock_file), **self.scope)

    async def stop(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.is_alive():
            log.warning("retrain_stopped", reason="the daemon stops")
            proc.terminate()

    async def run(self) -> None:
        wait = self.cfg.first_after_s
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
            if self._stop.is_set():
                return
            await self.run_once()
            wait = self.cfg.interval_h * 3600.0

    async def run_once(self) -> dict[str, Any]:
        """One scheduled retrain if this node gets the lock; returns what happened."""
        from cloud.training.fleet_data import load_fleet, since_seconds
        from cloud.training.retrain import RetrainOptions

        try:
            self.lock.acquire()
        except LockHeld as exc:
            self.skipped_locked += 1
            log.info("retrain_skipped", reason=str(exc))
            skipped = {"outcome": "skipped", "reason": str(exc), "node": self.node, "at": time.time()}
            self.report_path.parent.mkdir(parents=True, exist_ok=True)  # beside last.json, which it leaves alone
            self.report_path.with_name("last_skipped.json").write_text(json.dumps(skipped) + "\n")
            return skipped
        try:
            self.runs += 1
            t0 = time.time()
            fleet = await load_fleet(self.influx, since_seconds(self.cfg.since))
            opts = RetrainOptions(out_dir=self.cfg.out_dir, active_dir=active_model_dir(self.cfg.active_dir),
                                  key_path=self.key_path,
                                  synthetic=self.cfg.synthetic, epochs=self.cfg.epochs)
            out = await self._train(fleet, opts)
            out.update({"node": self.node, "started": t0, "seconds": round(time.time() - t0, 1),
                        "lock": {"path": str(self.cfg.lock_file), **self.scope}})
            self.last = out
            self.report_path.parent.mkdir(parents=True, exist_ok=True)
            self.report_path.write_text(json.dumps(out, indent=1) + "\n")
            log.info("retrain_done", outcome=out["outcome"], seconds=out["seconds"])
            return out
        finally:
            self.lock.release()

    async def _train(self, fleet: Any, opts: Any) -> dict[str, Any]:
        """The retrain in a process of its own; its outcome, also when it crashed or ran too long."""
        ctx = multiprocessing.get_context("spawn")
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_train_process, args=(send, fleet, opts), name="pulsegate-retrain", daemon=True)
        proc.start()
        send.close()  # the child holds the only writer: its exit is an EOF here
        self._proc = proc
        log.info("retrain_process", pid=proc.pid)
        try:
            got = await asyncio.wait_for(asyncio.to_thread(_receive, recv, proc), self.cfg.max_hours * 3600.0)
        except TimeoutError:
            proc.kill()
            got = ("failed", f"the training process ran longer than max_hours = {self.cfg.max_hours} and was killed")
        finally:
            await asyncio.to_thread(proc.join, 30.0)
            if proc.is_alive():
                proc.kill()
            recv.close()
            self._proc = None
        kind, value = got
        if kind == "report":
            return {"outcome": "passed" if value["gate"]["pass"] else "refused", "report": value}
        if kind == "failed":
            log.error("retrain_failed", reason=value)
        return {"outcome": kind, "reason": value}


def _receive(recv: Connection, proc: BaseProcess) -> tuple[str, Any]:
    try:
        got: tuple[str, Any] = recv.recv()
        return got
    except (EOFError, OSError):
        proc.join(5.0)
        return "failed", f"the training process exited with code {proc.exitcode} before it reported"


def _train_process(send: Connection, fleet: Any, opts: Any) -> None:
    """In the child: the retrain, its outcome sent back once (logs as JSON lines, as the daemon's)."""
    from cloud.training.retrain import TooLittleData, retrain
    from runtime.logs import setup

    setup()
    try:
        report = retrain(fleet, opts, lambda s: log.info("retrain_progress", step=s))
        send.send(("report", report))
    except TooLittleData as exc:
        send.send(("too_little_data", str(exc)))
    except Exception as exc:  # a broken run is reported and retried at the next interval
        log.error("retrain_failed", exc=True)
        send.send(("failed", f"{type(exc).__name__}: {str(exc)[:300]}"))
    finally:
        send.close()
