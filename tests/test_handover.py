"""Link handover on real brokers: base Wi-Fi broker and a cellular broker, each with an ingest worker into the
same real InfluxDB. The Wi-Fi broker goes away mid-stream and comes back: every record arrives exactly once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.localservices import Influxd
from cloud.influx import InfluxWriter
from cloud.ingest import IngestWorker
from edge.budget import Budget, BudgetConfig
from edge.links import LinkSet
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.uplink_fixtures import alarm, assert_exactly_once, own_broker, summary, wait_for_count

pytestmark = pytest.mark.integration


def _uplink(outbox: Outbox, port: int, gw: str) -> Uplink:
    return Uplink(outbox, "127.0.0.1", port, "site1", gw, max_inflight=50, reconnect_min_s=0.1,
                  reconnect_max_s=0.5, status_interval_s=2.0)


async def test_wifi_goes_away_and_comes_back(influx: Influxd, unique: str, tmp_path: Path) -> None:
    wifi = own_broker(tmp_path / "wifi")
    cell = own_broker(tmp_path / "cell")
    writer = InfluxWriter(influx.url, unique)
    await writer.create_database()
    workers = [IngestWorker("127.0.0.1", b.port, InfluxWriter(influx.url, unique), client_id=f"ing-{n}-{unique}",
                            group=unique, batch_points=200, flush_s=0.2, deadletter_dir=tmp_path / f"dl-{n}")
               for n, b in (("wifi", wifi), ("cell", cell))]
    outbox = Outbox(tmp_path / "outbox.sqlite", gateway=unique)
    budget = Budget(BudgetConfig(bytes_per_hour=10**7))
    links = LinkSet(outbox, [("wifi", False, _uplink(outbox, wifi.port, unique)),
                             ("cell", True, _uplink(outbox, cell.port, unique))], budget,
                    failover_s=1.0, probe_interval_s=1.0)
    for w in workers:
        await w.start()
    await links.start()
    tasks = [asyncio.create_task(w.run()) for w in workers] + [asyncio.create_task(links.run())]
    seen: list[str] = []
    n = 0

    async def produce(seconds: float) -> None:
        nonlocal n
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            n += 1
            outbox.append("alarms", alarm(n))
            outbox.append("summaries", summary(n))
            if not seen or seen[-1] != links.active_name:
                seen.append(links.active_name)
            await asyncio.sleep(0.02)

    try:
        await produce(1.5)
        wifi.stop()  # the ambulance drives away from the station
        await produce(3.0)
        assert links.active_name == "cell"
        wifi = own_broker(tmp_path / "wifi", port=wifi.port)  # back at the station
        await produce(4.0)
        alarms = await wait_for_count(writer, "alarms", unique, n, within_s=30)
        vitals = await wait_for_count(writer, "vitals", unique, n, within_s=30)
        deadline = time.monotonic() + 30  # the receipts follow the writes (at most one a second)
        while outbox.backlog() and time.monotonic() < deadline:  # noqa: ASYNC110 - emptied by the uplink
            await asyncio.sleep(0.1)
    finally:
        await links.stop()
        for w in workers:
            await w.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        outbox.close()
        await writer.close()
        wifi.stop()
        cell.stop()
    assert seen[:3] == ["wifi", "cell", "wifi"], seen
    assert links.handovers >= 2
    assert_exactly_once(alarms, n)
    assert_exactly_once(vitals, n)
    assert outbox.backlog() == 0
    # only the cellular link's bytes count against the budget
    cell_bytes = links.links[1][2].bytes_out
    assert 0 < budget.metered_total and cell_bytes > 0 and budget.free_total > 0
    assert budget.metered_total >= cell_bytes


async def test_budget_holds_summaries_on_a_metered_link_never_alarms(tmp_path: Path, unique: str) -> None:
    import aiomqtt

    from wire import codec, messages

    broker = own_broker(tmp_path / "cell")
    now = [1_800_000_000.0]
    budget = Budget(BudgetConfig(bytes_per_hour=4096), clock=lambda: now[0])
    budget.charge(4096, metered=True)  # the hour is used up
    # contract v1 (PUBACK ends a record): the cloud here is a plain listener, not an ingest that receipts
    outbox = Outbox(tmp_path / "outbox.sqlite", gateway=unique, wire_version=messages.V1)
    links = LinkSet(outbox, [("cell", True, _uplink(outbox, broker.port, unique))], budget)
    got: list[str] = []

    async def listen(ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"cloud-{unique}") as c:
            await c.subscribe(f"pg/v1/site1/{unique}/+", qos=1)
            ready.set()
            async for m in c.messages:
                got.append(type(codec.decode(bytes(m.payload))).__name__)  # type: ignore[arg-type]

    ready = asyncio.Event()
    listener = asyncio.create_task(listen(ready))
    await ready.wait()
    await links.start()
    task = asyncio.create_task(links.run())
    try:
        for n in range(5):
            outbox.append("summaries", summary(n))
            outbox.append("alarms", alarm(n))
        deadline = time.monotonic() + 10
        while got.count("Alarm") < 5 and time.monotonic() < deadline:  # noqa: ASYNC110 - filled by the listener
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        assert got.count("Alarm") == 5 and got.count("Summary") == 0  # alarms through, summaries held
        now[0] += 3601  # the next hour
        deadline = time.monotonic() + 10
        while (got.count("Summary") < 5 or outbox.backlog()) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # the listener can see a summary before its PUBACK deletes it here
        assert got.count("Summary") == 5 and outbox.backlog() == 0
    finally:
        await links.stop()
        await asyncio.wait_for(task, 20)
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        outbox.close()
        broker.stop()
