"""Uplink against a real mosquitto: retained status, last will, PUBACK-driven deletion, lanes on the wire.

These run the uplink as contract v1 (an outbox stamping ``v = 1``: deletion at PUBACK) because no
ingest is there to receipt; tests/test_receipts.py covers v2 with a real ingest."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bench.localservices import Mosquitto, free_port
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.uplink_fixtures import alarm, kill, own_broker, raw, spawn_driver
from wire import codec, messages, topics

pytestmark = pytest.mark.integration


class Listener:
    """A plain subscriber collecting decoded messages (paho thread -> list under a lock)."""

    def __init__(self, port: int, topic: str) -> None:
        self.items: list[tuple[str, messages.Message, bool]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(topic, qos=1)
        self.c.loop_start()

    def _on(self, c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.items.append((m.topic, codec.decode(bytes(m.payload)), bool(m.retain)))

    def statuses(self) -> list[messages.Status]:
        with self.lock:
            return [m for _, m, _ in self.items if isinstance(m, messages.Status)]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


async def _until(cond: object, within_s: float = 10.0) -> None:
    assert callable(cond)
    for _ in range(int(within_s / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_status_retained_backlog_and_clean_offline(broker: Mosquitto, unique: str, tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", unique, wire_version=messages.V1)
    for i in range(50):
        ob.append("bulk", raw(i))
    up = Uplink(ob, "127.0.0.1", broker.port, "s1", unique, status_interval_s=0.2, software="pg-test")
    await up.start()
    task = asyncio.create_task(up.run())
    lst = Listener(broker.port, f"pg/v1/s1/{unique}/#")
    try:
        await _until(lambda: up.connected and ob.backlog() == 0)
        await _until(lambda: any(s.online and s.backlog == 0 for s in lst.statuses()))
        first = lst.statuses()[0]
        assert first.gw == unique and first.software == "pg-test"
        assert up.acked == 50 and up.published == 50
        got = [m for _, m, _ in lst.items if isinstance(m, messages.RawBatch)]
        assert sorted(m.seq for m in got) == list(range(1, 51))
    finally:
        await up.stop()
        await task
        ob.close()
    assert not up.connected
    await _until(lambda: not lst.statuses()[-1].online)
    lst.close()
    late = Listener(broker.port, topics.uplink("s1", unique, "status"))  # a newcomer sees the retained one
    await _until(lambda: bool(late.items))
    assert late.items[0][2] and not late.statuses()[0].online
    late.close()


async def test_last_will_marks_a_killed_gateway_offline(broker: Mosquitto, unique: str, tmp_path: Path) -> None:
    lst = Listener(broker.port, topics.uplink("site1", unique, "status"))
    gw = spawn_driver(tmp_path, unique, broker.port, 10**6, 50)
    try:
        await _until(lambda: any(s.online for s in lst.statuses()), 20)
        kill(gw, signal.SIGKILL)
        await _until(lambda: not lst.statuses()[-1].online, 10)
    finally:
        kill(gw)
        lst.close()


async def test_alarms_overtake_a_bulk_backlog(broker: Mosquitto, unique: str, tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", unique, wire_version=messages.V1)
    for i in range(2000):
        ob.append("bulk", raw(i))
    for i in range(5):
        ob.append("alarms", alarm(i))
    assert await asyncio.to_thread(ob.flush, 10)
    lst = Listener(broker.port, f"pg/v1/s1/{unique}/+")
    up = Uplink(ob, "127.0.0.1", broker.port, "s1", unique, max_inflight=50)
    await up.start()
    task = asyncio.create_task(up.run())
    try:
        await _until(lambda: ob.backlog() == 0, 20)
        await _until(lambda: len(lst.items) >= 2005)
    finally:
        await up.stop()
        await task
        ob.close()
        lst.close()
    order = [t.rsplit("/", 1)[1] for t, m, _ in lst.items if not isinstance(m, messages.Status)]
    assert order[:5] == ["alarms"] * 5  # appended last, sent first


async def test_unreachable_broker_keeps_everything_and_reports_disconnected(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", "gw1")
    up = Uplink(ob, "127.0.0.1", free_port(), "s1", "gw1", reconnect_min_s=0.05, reconnect_max_s=0.1)
    await up.start()
    task = asyncio.create_task(up.run())
    for i in range(10):
        ob.append("bulk", raw(i))
    await _until(lambda: up.connect_failures >= 3)
    assert not up.connected and ob.backlog() == 10
    await up.stop()
    await task
    ob.close()


async def test_metrics_collector_reports_uplink_and_outbox(broker: Mosquitto, unique: str, tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from edge.gateway_status import uplink_metrics
    from runtime.metrics import new_registry

    ob = Outbox(tmp_path / "o.sqlite", unique, wire_version=messages.V1)
    up = Uplink(ob, "127.0.0.1", broker.port, "s1", unique)
    reg, collector = new_registry()
    uplink_metrics(collector, up)
    for i in range(7):
        ob.append("bulk", raw(i))
    assert "pulsegate_outbox_backlog 7.0" in generate_latest(reg).decode()
    lst = Listener(broker.port, f"pg/v1/s1/{unique}/bulk")  # a subscriber: else PUBACK 0x10 keeps them
    await up.start()
    task = asyncio.create_task(up.run())
    try:
        await _until(lambda: up.acked == 7 and ob.backlog() == 0)
        text = generate_latest(reg).decode()
    finally:
        await up.stop()
        await task
        ob.close()
        lst.close()
    assert "pulsegate_uplink_acked_total 7.0" in text and "pulsegate_uplink_connected 1.0" in text
    assert "pulsegate_outbox_appended_total 7.0" in text


def test_config_sections_build_the_components(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from cloud.influx import InfluxConfig, InfluxWriter
    from cloud.ingest import IngestConfig, IngestWorker
    from edge.uplink import UplinkConfig, open_outbox

    (tmp_path / "pw").write_text("s3cret\n")
    cfg = UplinkConfig(site="ward7", host="broker.example", port=8883, username="gw1", password_file="pw",
                       outbox_path="state/outbox.sqlite", quota_mb=1.5, tls_ca_file="/etc/ca.crt")
    ob = open_outbox(cfg, "gw1", base=tmp_path)
    up = Uplink.from_config(cfg, ob, "gw1", base=tmp_path)
    assert (tmp_path / "state" / "outbox.sqlite").exists() and ob.quota_bytes == int(1.5 * 1024 * 1024)
    assert (up.password, up.client_id, up.tls[0]) == ("s3cret", "pg-gw1", "/etc/ca.crt")
    ob.close()
    with pytest.raises(ValidationError):
        UplinkConfig(site="ward7", qos=2)  # type: ignore[call-arg]
    icfg = IngestConfig(client_id="ing-2", password_file=str(tmp_path / "pw"), username="ingest")
    worker = IngestWorker.from_config(icfg, InfluxWriter.from_config(InfluxConfig(database="pg")))
    assert (worker.client_id, worker.password, worker.batch_points, worker.flush_s) == ("ing-2", "s3cret", 20000, 1.0)
    with pytest.raises(ValidationError):
        InfluxConfig(retention_days=3)  # type: ignore[call-arg]


@pytest.mark.parametrize("version", [messages.V1, messages.VERSION])
async def test_no_subscribers_keeps_records_until_one_subscribes(unique: str, tmp_path: Path, version: int) -> None:
    """mosquitto answers PUBACK 0x10 while nobody subscribes (after a restart, before the ingest's shared
    subscription is back): the uplink keeps the records and probes with one until a subscriber appears.
    Its own broker: on the session's shared one, persistent ingest sessions of earlier tests still subscribe."""
    broker = own_broker(tmp_path / "mq")
    ob = Outbox(tmp_path / "o.sqlite", unique, wire_version=version)
    for i in range(20):
        ob.append("bulk", raw(i))
    up = Uplink(ob, "127.0.0.1", broker.port, "s1", unique, max_inflight=10, receipts=False)
    await up.start()
    task = asyncio.create_task(up.run())
    lst = None
    try:
        await _until(lambda: up.no_subscribers >= 3, 30)  # generous: the full suite shares 2 loaded cores
        await asyncio.sleep(0.3)
        assert ob.backlog() == 20 and up.acked == 0
        probes = up.published
        await asyncio.sleep(1.0)
        assert up.published - probes <= 6  # one record at a time, backing off (50 ms doubling to 2 s)
        lst = Listener(broker.port, f"pg/v1/s1/{unique}/bulk")
        await _until(lambda: ob.backlog() == 0, 30)
    finally:
        await up.stop()
        await task
        ob.close()
        if lst:
            lst.close()
        broker.stop()
    got = sorted({m.seq for _, m, _ in lst.items if isinstance(m, messages.RawBatch)})
    assert got == list(range(1, 21))
