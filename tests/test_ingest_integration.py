"""Outbox -> Uplink -> real mosquitto -> IngestWorker -> real InfluxDB."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.localservices import Influxd, Mosquitto
from cloud.influx import InfluxWriter
from cloud.ingest import IngestWorker
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.uplink_fixtures import alarm, raw, summary, wait_for_count

pytestmark = pytest.mark.integration


async def test_outbox_messages_arrive_in_influx_exactly_once(
    broker: Mosquitto, influx: Influxd, unique: str, tmp_path: Path
) -> None:
    writer = InfluxWriter(influx.url, unique)
    await writer.create_database()
    outbox = Outbox(tmp_path / "outbox.sqlite", gateway=unique, quota_bytes=10_000_000)
    uplink = Uplink(outbox, "127.0.0.1", broker.port, "site1", unique, max_inflight=100)
    worker = IngestWorker("127.0.0.1", broker.port, InfluxWriter(influx.url, unique), client_id=f"ing-{unique}",
                          group=unique, batch_points=500, flush_s=0.2, deadletter_dir=tmp_path / "dl",
                          end_session_on_stop=True)
    for n in range(300):
        outbox.append("bulk", raw(n))
    for n in range(20):
        outbox.append("alarms", alarm(n))
        outbox.append("summaries", summary(n, beds=3))
    await worker.start()
    await uplink.start()
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(uplink.run())]
    try:
        raws = await wait_for_count(writer, "raw", unique, 300)
        alarms = await wait_for_count(writer, "alarms", unique, 20)
        vitals = await wait_for_count(writer, "vitals", unique, 60)
        for n in range(300, 400):  # appended while connected
            outbox.append("bulk", raw(n))
        raws = await wait_for_count(writer, "raw", unique, 400)
    finally:
        await uplink.stop()
        await worker.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=20)
        outbox.close()
        await writer.close()
    assert sorted(raws) == list(range(1, 401)) and set(raws.values()) == {1}
    assert sorted(alarms) == list(range(1, 21)) and set(alarms.values()) == {1}
    assert sorted(vitals) == list(range(1, 21)) and set(vitals.values()) == {3}  # 3 beds per summary
    assert uplink.acked >= 440 and outbox.backlog() == 0
    assert worker.acked >= 440
