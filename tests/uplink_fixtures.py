"""Helpers of the uplink/ingest tests: message factories and InfluxDB look-ups."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from pathlib import Path

from bench.localservices import Mosquitto
from bench.procs import REPO, kill, spawn, wait_exit  # noqa: F401 - the tests import them from here
from cloud.influx import InfluxWriter
from wire import messages

T0 = 1_700_000_000_000_000_000


def raw(n: int, bed: str = "b1") -> messages.RawBatch:
    """A one-point bulk message; ``n`` makes its capture time unique."""
    item = messages.Raw(bed=bed, patient="p-x", param="heart_rate", t=T0 + n * 1_000_000, value=60.0 + n % 40,
                        quality=0)
    return messages.RawBatch(v=messages.VERSION, gw="", seq=0, items=[item])


def alarm(n: int, bed: str = "b1") -> messages.Alarm:
    return messages.Alarm(v=messages.VERSION, gw="", seq=0, alarm_id=f"a{n}", bed=bed, patient="p-x",
                          t=T0 + n * 1_000_000, state="raised", priority="high", kind="physiological",
                          source="threshold", condition="spo2_low", value=85.0, param="spo2")


def summary(n: int, beds: int = 1) -> messages.Summary:
    items = [messages.SummaryItem(bed=f"b{b}", patient=f"p{b}", param="spo2", t=T0 + n * 1_000_000_000, count=5,
                                  min=94.0, max=98.0, mean=96.0, last=97.0) for b in range(beds)]
    return messages.Summary(v=messages.VERSION, gw="", seq=0, interval_s=1.0, items=items)


async def seq_counts(influx: InfluxWriter, measurement: str, gateway: str) -> Counter[int]:
    rows = await influx.rows(f"SELECT seq FROM \"{measurement}\" WHERE gateway = '{gateway}'")
    return Counter(int(r["seq"]) for r in rows)


async def wait_for_count(influx: InfluxWriter, measurement: str, gateway: str, n: int,
                         within_s: float = 30.0) -> Counter[int]:
    deadline = time.monotonic() + within_s
    counts: Counter[int] = Counter()
    while time.monotonic() < deadline:
        try:
            counts = await seq_counts(influx, measurement, gateway)
        except Exception:
            counts = Counter()
        if sum(counts.values()) >= n:
            return counts
        await asyncio.sleep(0.2)
    return counts


def own_broker(workdir: Path, port: int = 0, extra_conf: str = "") -> Mosquitto:
    """A private mosquitto (with persistence, also as root: see bench.localservices)."""
    return Mosquitto(workdir, port=port, extra_conf=extra_conf).start()


def spawn_driver(tmp: Path, gateway: str, port: int, count: int, rate: float, name: str = "driver",
                 *extra: str) -> subprocess.Popen[bytes]:
    return spawn("bench.outbox_driver", "--db", str(tmp / f"{gateway}.sqlite"), "--gateway", gateway, "--port",
                 str(port), "--count", str(count), "--rate", str(rate), *extra, log=tmp / f"{name}.log")


def assert_exactly_once(counts: Counter[int], n: int, per_seq: int = 1) -> None:
    missing = sorted(set(range(1, n + 1)) - set(counts))
    extra = sorted(set(counts) - set(range(1, n + 1)))
    doubled = sorted(s for s, c in counts.items() if c != per_seq)
    assert not missing, f"{len(missing)} sequence numbers missing, e.g. {missing[:10]}"
    assert not extra, f"unexpected sequence numbers {extra[:10]}"
    assert not doubled, f"{len(doubled)} sequence numbers with {per_seq=} violated, e.g. {doubled[:10]}"
