"""Backpressure with InfluxDB stopped (SIGSTOP): the ingest holds at most ``receive_maximum`` messages,
the broker queues the rest, nothing is acknowledged until InfluxDB takes it, nothing is lost after SIGCONT.
Real mosquitto and influxd of its own (the pause would stall the shared ones)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from bench.localservices import Influxd, Mosquitto
from cloud.influx import InfluxWriter
from cloud.ingest import IngestWorker
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.uplink_fixtures import summary, wait_for_count

pytestmark = pytest.mark.integration

RECEIVE_MAXIMUM = 20
MESSAGES = 400


async def test_stalled_influx_bounds_what_the_ingest_holds(tmp_path: Path) -> None:
    mq = Mosquitto(tmp_path / "mq").start()
    idb = Influxd(tmp_path / "influx").start()
    assert idb.proc is not None
    db = InfluxWriter(idb.url, "bp")
    await db.create_database()
    outbox = Outbox(tmp_path / "outbox.sqlite", gateway="bp-gw", quota_bytes=50_000_000)
    uplink = Uplink(outbox, "127.0.0.1", mq.port, "site1", "bp-gw", max_inflight=100)
    worker = IngestWorker("127.0.0.1", mq.port, InfluxWriter(idb.url, "bp", timeout_s=60), client_id="bp-ingest",
                          group="bp", batch_points=50, flush_s=0.1, deadletter_dir=tmp_path / "dl",
                          receive_maximum=RECEIVE_MAXIMUM)
    await worker.start()
    tasks = [asyncio.create_task(worker.run())]
    held_max = 0
    try:
        while not worker.connected:  # noqa: ASYNC110 - waiting for the subscription
            await asyncio.sleep(0.02)
        os.kill(idb.proc.pid, signal.SIGSTOP)
        try:
            for n in range(MESSAGES):
                outbox.append("summaries", summary(n, beds=4))
            await uplink.start()
            tasks.append(asyncio.create_task(uplink.run()))
            for _ in range(150):  # 3 s with InfluxDB stopped: the gateway's records all reach the broker
                held_max = max(held_max, worker.received - worker.acked)
                await asyncio.sleep(0.02)
            published_during_pause = uplink.acked
            acked_during_pause = worker.acked
        finally:
            os.kill(idb.proc.pid, signal.SIGCONT)
        vitals = await wait_for_count(db, "vitals", "bp-gw", MESSAGES * 4, within_s=90)  # 4 points each
    finally:
        await uplink.stop()
        await worker.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        outbox.close()
        await db.close()
        idb.stop()
        mq.stop()
    assert published_during_pause >= MESSAGES  # the broker took everything: the gateway's outbox emptied
    assert acked_during_pause == 0  # nothing acknowledged while InfluxDB could not take it
    assert 0 < held_max <= RECEIVE_MAXIMUM  # the worker held at most Receive Maximum messages
    assert sorted(vitals) == list(range(1, MESSAGES + 1)) and set(vitals.values()) == {4}
