"""The fault matrix of the reliable uplink (contract v2 receipts): `pulsegate bench faults --runs N --json`.

Every run of a fault class starts fresh processes: a mosquitto (persistence on,
autosave every second), the gateway (``bench.outbox_driver``: Outbox + Uplink,
one-point bulk records numbered 1..N, capture time derived from the number)
and the ingest workers (``cloud.ingest_main``); one influxd serves the whole
matrix, with a database of its own per run. After the fault the gateway must
drain: it exits 0 only once the cloud receipted every record, and a receipt
is only sent after InfluxDB accepted the points. Then InfluxDB is asked for
every sequence number: ``lost`` = numbers neither stored nor reported as a
quota gap, ``duplicates`` = numbers stored more than once (0 by idempotence),
``conflicts`` = numbers both stored and reported dropped.

The tests (tests/test_receipt_faults.py) run each class once and assert on
the same figures; the bench repeats the matrix and prints them.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.localservices import Influxd, Mosquitto
from bench.procs import json_lines, kill, spawn, wait_exit
from cloud.influx import InfluxWriter

DRAIN_S = 90.0


@dataclass
class Run:
    """The processes and the database of one run of one fault class."""

    tmp: Path
    influx: Influxd
    gateway: str = field(default_factory=lambda: "fg" + uuid.uuid4().hex[:10])
    mq: Mosquitto | None = None
    port: int = 0
    gw: subprocess.Popen[bytes] | None = None
    ingest: subprocess.Popen[bytes] | None = None
    gw_starts: int = 0
    ingest_starts: int = 0
    resent: int = 0
    dropped: int = 0

    @property
    def db(self) -> str:
        return self.gateway

    def broker(self) -> None:
        self.mq = Mosquitto(self.tmp / "mq", port=self.port).start()
        self.port = self.mq.port

    def broker_down(self, kill9: bool) -> None:
        assert self.mq is not None
        self.mq.stop(kill=kill9)

    def start_ingest(self, *extra: str) -> None:
        self.ingest_starts += 1
        self.ingest = spawn("cloud.ingest_main", "--port", str(self.port), "--influx-url", self.influx.url,
                            "--database", self.db, "--client-id", f"{self.gateway}-ing", "--group", self.gateway,
                            "--batch-points", "1000", "--flush-s", "0.2", *extra,
                            log=self.tmp / f"ingest-{self.ingest_starts}.log")

    def stop_ingest(self, sig: int = signal.SIGKILL) -> None:
        kill(self.ingest, sig)

    def start_gateway(self, count: int, rate: float, *extra: str) -> None:
        self.gw_starts += 1
        self.gw = spawn("bench.outbox_driver", "--db", str(self.tmp / "gw.sqlite"), "--gateway", self.gateway,
                        "--port", str(self.port), "--count", str(count), "--rate", str(rate),
                        "--receipt-timeout-s", "1", "--receipt-silence-s", "4", *extra,
                        log=self.tmp / f"gw-{self.gw_starts}.log")

    def start(self, count: int, rate: float, ingest: tuple[str, ...] = (), gateway: tuple[str, ...] = ()) -> None:
        """A fresh broker, an ingest worker and the gateway producing ``count`` records at ``rate`` a second."""
        self.broker()
        self.start_ingest(*ingest)
        self.start_gateway(count, rate, *gateway)

    def gateway_says(self, key: str) -> list[dict[str, Any]]:
        return [d for d in json_lines(self.tmp / f"gw-{self.gw_starts}.log") if key in d]

    async def drained(self) -> None:
        assert self.gw is not None
        rc = await wait_exit(self.gw, DRAIN_S)
        if rc != 0:
            raise RuntimeError(f"gateway driver exited with {rc}")
        done = self.gateway_says("drained")[-1]
        self.resent += int(done.get("resent", 0))
        self.dropped += int(done.get("dropped", 0))

    async def stored(self) -> int:
        rows = await self._rows(f"SELECT count(seq) FROM raw WHERE gateway = '{self.gateway}'")
        return int(rows[0]["count"]) if rows else 0

    async def wait_stored(self, n: int, within_s: float = 30.0) -> None:
        deadline = time.monotonic() + within_s
        while await self.stored() < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} points not stored within {within_s}s")
            await asyncio.sleep(0.05)

    async def wait_gateway(self, cond: Callable[[dict[str, Any]], bool], within_s: float = 30.0) -> None:
        deadline = time.monotonic() + within_s
        while not any(cond(d) for d in self.gateway_says("appended")):
            if time.monotonic() > deadline:
                raise TimeoutError("the gateway did not reach the state asked for")
            await asyncio.sleep(0.05)

    async def verdict(self, count: int) -> dict[str, int]:
        rows = await self._rows(f"SELECT seq FROM raw WHERE gateway = '{self.gateway}'")
        stored = Counter(int(r["seq"]) for r in rows)
        gaps = await self._rows(f"SELECT first_seq, last_seq FROM gaps WHERE gateway = '{self.gateway}' "
                                "AND gap_stream = 'bulk'")
        reported = {s for g in gaps for s in range(int(g["first_seq"]), int(g["last_seq"]) + 1)}
        wanted = set(range(1, count + 1))
        return {"lost": len(wanted - set(stored) - reported),
                "duplicates": sum(c - 1 for c in stored.values() if c > 1),
                "conflicts": len(set(stored) & reported), "unexpected": len(set(stored) - wanted),
                "reported_dropped": len(reported)}

    async def _rows(self, q: str) -> list[dict[str, Any]]:
        db = InfluxWriter(self.influx.url, self.db)
        try:
            return await db.rows(q)
        finally:
            await db.close()

    def close(self) -> None:
        kill(self.gw)
        kill(self.ingest)
        if self.mq is not None:
            self.mq.stop()


# ---- the fault classes: each takes a fresh Run, injects its fault, leaves the gateway draining --------------

async def broker_kill_ingest_down(r: Run) -> int:
    """The ingest is down, PUBACKed messages wait in the broker; the broker is killed -9 (loses what it did not
    save), comes back, then the ingest comes back."""
    n = 2000
    r.start(n, 500)
    await r.wait_stored(200)
    r.stop_ingest()
    await asyncio.sleep(1.5)
    r.broker_down(kill9=True)
    await asyncio.sleep(0.5)
    r.broker()
    await asyncio.sleep(0.5)
    r.start_ingest()
    return n


async def broker_kill_mid_drain(r: Run) -> int:
    """The broker goes away (clean stop), the gateway builds a backlog; the broker comes back and is killed -9
    while the gateway drains into it."""
    n = 3000
    r.start(n, 1000)
    await r.wait_stored(300)
    r.broker_down(kill9=False)
    await asyncio.sleep(1.0)
    before = await r.stored()
    r.broker()
    await r.wait_stored(before + 50)
    r.broker_down(kill9=True)
    await asyncio.sleep(0.3)
    r.broker()
    return n


async def ingest_killed_after_write(r: Run) -> int:
    """The worker dies right after InfluxDB accepted its third batch, before its receipt and its acks."""
    n = 2000
    r.start(n, 500, ingest=("--die-after-batches", "3"))
    assert r.ingest is not None
    await wait_exit(r.ingest, 30)
    await asyncio.sleep(0.5)
    r.start_ingest()  # systemd's Restart=: same client id, the broker redelivers the unacknowledged
    return n


async def lost_receipt(r: Run) -> int:
    """Every receipt for the records never reaches the gateway (thrown away by the ingest, as a broker crash
    would): InfluxDB holds them all, the gateway heard of none and must re-send them. (Losing only some
    receipts is covered by the next cumulative one and forces no re-send.)"""
    n = 1500
    r.start(n, 1000, ingest=("--drop-receipts", "1000000"))
    await r.wait_stored(n)
    r.stop_ingest(signal.SIGTERM)  # waits for it to exit
    r.start_ingest()  # receipts flow again, but only for what the gateway re-sends
    return n


async def gateway_kill_unreceipted(r: Run) -> int:
    """The gateway is killed -9 with records the broker acknowledged and the cloud did not receipt yet."""
    n = 1500
    r.start(n, 1000, ingest=("--no-receipts",))
    await r.wait_gateway(lambda d: int(d.get("unreceipted", 0)) > 200)
    kill(r.gw)
    r.stop_ingest()  # killed too: its session stays, a receipting worker with its client id takes over
    r.start_ingest()
    r.start_gateway(n, 1000)  # same outbox: the unreceipted records are published again
    return n


async def quota_through_faults(r: Run) -> int:
    """A 50 kB outbox quota through an ingest outage, a broker kill -9 and the restart: every number is in
    InfluxDB exactly once or reported in a gap, never both."""
    n = 3000
    r.start(n, 1000, gateway=("--quota-mb", "0.05"))
    await r.wait_stored(200)
    r.stop_ingest()
    await asyncio.sleep(0.5)
    r.broker_down(kill9=True)
    await asyncio.sleep(1.5)
    r.broker()
    r.start_ingest()
    return n


FAULTS: dict[str, Callable[[Run], Awaitable[int]]] = {
    "broker_kill_ingest_down": broker_kill_ingest_down,
    "broker_kill_mid_drain": broker_kill_mid_drain,
    "ingest_killed_after_write": ingest_killed_after_write,
    "lost_receipt": lost_receipt,
    "gateway_kill_unreceipted": gateway_kill_unreceipted,
    "quota_through_faults": quota_through_faults,
}


async def run_fault(name: str, influx: Influxd, workdir: Path) -> dict[str, Any]:
    """One run of one fault class with fresh processes; the figures of :meth:`Run.verdict` plus resent."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    r = Run(workdir, influx)
    began = time.monotonic()
    db = InfluxWriter(influx.url, r.db)
    await db.create_database()
    await db.close()
    try:
        n = await FAULTS[name](r)
        await r.drained()
        out: dict[str, Any] = {"fault": name, "records": n, **await r.verdict(n)}
    finally:
        r.close()
    out.update(resent=r.resent, dropped=r.dropped, seconds=round(time.monotonic() - began, 2))
    return out


async def bench_faults(runs: int, only: list[str] | None = None) -> dict[str, Any]:
    names = only or list(FAULTS)
    per: dict[str, dict[str, Any]] = {n: {"runs": 0, "lost": 0, "duplicates": 0, "conflicts": 0, "resent": 0,
                                          "dropped": 0, "seconds": 0.0, "max_seconds": 0.0, "failed": 0}
                                      for n in names}
    with tempfile.TemporaryDirectory(prefix="pg-bench-faults-") as d:
        base = Path(d)
        influx = Influxd(base / "influx").start()
        try:
            for i in range(runs):
                for name in names:
                    agg = per[name]
                    agg["runs"] += 1
                    try:
                        got = await run_fault(name, influx, base / f"{name}-{i}")
                    except (RuntimeError, TimeoutError, AssertionError) as exc:
                        agg["failed"] += 1
                        agg.setdefault("errors", []).append(str(exc)[:200])
                        continue
                    for k in ("lost", "duplicates", "conflicts", "resent", "dropped"):
                        agg[k] += got[k]
                    agg["seconds"] += got["seconds"]
                    agg["max_seconds"] = max(agg["max_seconds"], got["seconds"])
        finally:
            influx.stop()
    for agg in per.values():
        ok = agg["runs"] - agg["failed"]
        agg["seconds"] = round(agg["seconds"] / ok, 2) if ok else None
    return {"runs": runs, "faults": per,
            "lost": sum(a["lost"] for a in per.values()), "duplicates": sum(a["duplicates"] for a in per.values()),
            "failed": sum(a["failed"] for a in per.values())}
