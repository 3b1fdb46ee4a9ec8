"""Strict decoding in the ingest: bad messages are counted and dead-lettered, never block the stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry, generate_latest

from bench.localservices import Influxd, Mosquitto
from cloud.deadletter import read_entries
from cloud.influx import InfluxWriter
from cloud.ingest import IngestWorker
from tests.uplink_fixtures import T0, assert_exactly_once, raw, wait_for_count
from wire import codec, messages

pytestmark = pytest.mark.integration


def _publisher(port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


async def test_bad_messages_are_dead_lettered_and_good_ones_flow(broker: Mosquitto, influx: Influxd, unique: str,
                                                                 tmp_path: Path) -> None:
    db = InfluxWriter(influx.url, unique)
    await db.create_database()
    assert (await db.write([f"events,gateway=x detail=1i {T0 - 1}"])).ok  # later `events` points (same shard) conflict
    registry = CollectorRegistry()
    worker = IngestWorker("127.0.0.1", broker.port, InfluxWriter(influx.url, unique), client_id=f"i-{unique}",
                          group=unique, batch_points=100, flush_s=0.2, deadletter_dir=tmp_path / "dl",
                          registry=registry, end_session_on_stop=True)
    await worker.start()
    task = asyncio.create_task(worker.run())
    pub = _publisher(broker.port)
    topic = f"pg/v1/site1/{unique}/bulk"
    try:
        for _ in range(50):
            if worker.connected:
                break
            await asyncio.sleep(0.1)
        good = []
        for n in range(1, 21):
            m = raw(n)
            m.gw, m.seq = unique, n
            good.append(codec.encode(m))
        bad_version = raw(99)
        bad_version.v, bad_version.gw, bad_version.seq = 3, unique, 99
        impostor = raw(98)
        impostor.gw, impostor.seq = "someone-else", 98
        event = messages.Event(v=1, gw=unique, seq=1, t=T0, kind="x")
        bad = [
            (topic, b"\xc1 not msgpack"),
            (topic, msgspec.msgpack.encode({"k": "raw", "v": 1, "gw": unique, "seq": 1, "items": "nope"})),
            (topic, codec.encode(bad_version)),
            (topic, codec.encode(impostor)),
            (f"pg/v1/site1/{unique}/events", codec.encode(event)),
        ]
        for i, payload in enumerate(good):
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
            if i < len(bad):
                pub.publish(*bad[i], qos=1).wait_for_publish(5)
        counts = await wait_for_count(db, "raw", unique, 20)
        for _ in range(50):
            if sum(worker.deadletters.counts.values()) >= len(bad):
                break
            await asyncio.sleep(0.1)
    finally:
        pub.disconnect()
        pub.loop_stop()
        await worker.stop()
        await asyncio.wait_for(task, 20)
        await db.close()
    assert_exactly_once(counts, 20)
    # (an unknown stream, e.g. .../video, is not even subscribed: the worker takes the five uplink streams)
    assert worker.deadletters.counts == {"malformed": 1, "schema": 1, "version": 1, "gateway_mismatch": 1,
                                         "influx_400": 1}
    entries = list(read_entries(tmp_path / "dl"))
    assert sorted(e["reason"] for e in entries) == sorted(worker.deadletters.counts)
    kept = next(e for e in entries if e["reason"] == "malformed")
    assert kept["topic"] == topic and kept["payload_b64"]
    refused = next(e for e in entries if e["reason"] == "influx_400")
    assert refused["line"].startswith("events,") and "field type conflict" in refused["detail"]
    text = generate_latest(registry).decode()
    assert 'pulsegate_ingest_deadletters_total{reason="gateway_mismatch"} 1.0' in text
    assert worker.acked >= 25  # the bad ones were acknowledged too: nothing is redelivered forever


async def test_deadletter_write_failure_is_counted_not_raised(tmp_path: Path) -> None:
    from cloud.deadletter import DeadLetters

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    dl = DeadLetters(tmp_path)
    dl.directory = blocker  # every append now fails with an OSError
    await dl.payloads([("malformed", "pg/v1/s/g/summaries", b"\x00", "bad")])
    assert dl.counts["malformed"] == 1 and dl.write_errors == 1
