"""Ingest worker sessions on a real mosquitto: leaving the shared group for good loses nothing."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.localservices import Influxd, Mosquitto
from cloud.influx import InfluxWriter
from cloud.ingest import IngestWorker
from tests.uplink_fixtures import assert_exactly_once, raw, wait_for_count
from wire import codec

pytestmark = pytest.mark.integration


def _session_present(port: int, client_id: str) -> bool:
    flags: list[bool] = []
    done = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)

    def on_connect(cl: mqtt.Client, u: object, f: mqtt.ConnectFlags, rc: object, p: object) -> None:
        flags.append(f.session_present)
        done.set()

    c.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    done.wait(5)
    c.disconnect()
    c.loop_stop()
    return flags[0]


async def test_worker_leaving_for_good_hands_its_share_back(broker: Mosquitto, influx: Influxd, unique: str,
                                                            tmp_path: Path) -> None:
    n = 600
    db = InfluxWriter(influx.url, unique)
    await db.create_database()
    leaver = IngestWorker("127.0.0.1", broker.port, InfluxWriter(influx.url, unique), client_id=f"{unique}-a",
                          group=unique, flush_s=0.2, end_session_on_stop=True)
    stayer = IngestWorker("127.0.0.1", broker.port, InfluxWriter(influx.url, unique), client_id=f"{unique}-b",
                          group=unique, flush_s=0.2)
    workers = [leaver, stayer]
    for w in workers:
        await w.start()
    tasks = [asyncio.create_task(w.run()) for w in workers]
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        while not (leaver.connected and stayer.connected):  # noqa: ASYNC110 - waiting for both subscriptions
            await asyncio.sleep(0.05)
        for seq in range(1, n + 1):
            m = raw(seq)
            m.gw, m.seq = unique, seq
            pub.publish(f"pg/v1/s1/{unique}/bulk", codec.encode(m), qos=1)
            if seq == n // 2:
                await leaver.stop()  # mid-stream: it unsubscribes, drains its share and ends its session
                await asyncio.wait_for(tasks[0], 20)
            if seq % 50 == 0:
                await asyncio.sleep(0.02)
        counts = await wait_for_count(db, "raw", unique, n)
        assert leaver.acked > 0 and stayer.acked > 0
    finally:
        pub.disconnect()
        pub.loop_stop()
        await stayer.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        await db.close()
    assert_exactly_once(counts, n)
    assert not _session_present(broker.port, f"{unique}-a")  # its session is gone: nothing stranded in it
    assert _session_present(broker.port, f"{unique}-b")  # a plain stop keeps the session (restarts lose nothing)
