"""Contract v2 delivery receipts: the ingest's book, the gateway's ledger, the codec, and both daemons' parts
against a real mosquitto and influxd (v2 gateway, v1 gateway beside it, status figures, coalescing)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from bench.localservices import Influxd, Mosquitto
from cloud.influx import InfluxWriter
from cloud.ingest import IngestWorker
from cloud.ingest_admit import Rejection, admit
from cloud.receipts import RangeSet, ReceiptBook, mark_of
from edge.outbox import Outbox
from edge.receipt_ledger import Ledger
from edge.uplink import Uplink
from tests.uplink_fixtures import assert_exactly_once, raw, wait_for_count
from wire import codec, messages, topics


def test_rangeset_merges_and_forgets_runs_that_stopped_changing() -> None:
    rs = RangeSet()
    for seq in [1, 2, 3, 5, 7, 6, 10]:
        rs.add(seq, seq)
    assert rs.runs() == [(1, 3), (5, 7), (10, 10)]
    rs.add(4, 4)
    rs.add(8, 9)
    assert rs.runs() == [(1, 10)]
    rs.add(20, 30)
    rs.add(12, 12)
    assert rs.take(repeat=2, limit=10) == [(1, 10), (12, 12), (20, 30)]
    rs.add(31, 31)  # the top run grows: it is news again, the others are not
    assert rs.take(repeat=2, limit=10) == [(1, 10), (12, 12), (20, 31)]
    rs.add(32, 32)
    assert rs.take(repeat=2, limit=10) == [(20, 32)]  # (1, 10) and (12, 12) went out twice: forgotten
    assert rs.runs() == [(20, 32)]
    assert rs.take(repeat=2, limit=10) == [(20, 32)]
    assert rs.runs() == []  # nothing new: after two receipts the book forgets it
    rs.add(25, 25)  # a re-send of a number receipted before: receipted again
    assert rs.take(repeat=2, limit=1) == [(25, 25)]
    for seq in range(100, 200, 2):
        rs.add(seq, seq)
    rs.trim(10)
    assert len(rs) == 10 and rs.runs()[0] == (180, 180)


def test_a_message_refused_for_good_is_receipted_a_garbled_one_is_not() -> None:
    """A decoded v2 message the ingest refuses for good (dead-lettered) is receipted, or the gateway would re-send
    it for ever; an undecodable one names no number."""
    ev = messages.ClinicalEvent(v=messages.VERSION, gw="gwA", seq=9, bed="b1", patient="Jane Doe", t=1,
                                code="icu_transfer", recorded=2, by="nurse1")
    got = admit(topics.uplink("s1", "gwA", "events"), codec.encode(ev))
    assert isinstance(got, Rejection) and got.reason == "identifier"
    assert got.mark == ("s1", "gwA", "events", 9, "", 0, -1)
    bad = admit(topics.uplink("s1", "gwA", "events"), b"\x93garbage")
    assert isinstance(bad, Rejection) and bad.mark is None


def test_book_receipts_an_ambulances_positions_and_notices_not_its_status() -> None:
    """An ambulance keeps ``Where`` (on the status stream) and notices in its outbox: both are receipted."""
    book = ReceiptBook(interval_s=1.0)
    pos = messages.Position(t=1, lat=51.5, lon=-0.1, speed_kmh=40)
    book.mark("s1", messages.Where(v=messages.VERSION, gw="amb", seq=7, t=1, position=pos), "status", now=10.0)
    book.mark("s1", messages.Status(v=messages.VERSION, gw="amb", seq=8, t=1, online=True), "status", now=10.0)
    book.mark("s1", messages.Notice(v=messages.VERSION, gw="amb", seq=3, notice_id="n1", rev=1, t=1, t_alert=1,
                                    hospital="h1", complaint="stemi", bed="b1", patient="p1"), "notices", now=10.0)
    assert mark_of("s1", messages.Status(v=messages.VERSION, gw="amb", seq=8, t=1, online=True), "status") is None
    (_, rc), = book.due(now=10.0)
    assert rc.streams == [messages.StreamReceipt(stream="notices", low=3, upto=3),
                          messages.StreamReceipt(stream="status", low=7, upto=7)]


def test_book_coalesces_per_gateway_and_ignores_v1_and_status() -> None:
    book = ReceiptBook(interval_s=1.0)
    v2 = raw(1)
    v2.gw, v2.seq = "gwA", 1
    v1 = raw(1)
    v1.v, v1.gw, v1.seq = messages.V1, "gwB", 1
    book.mark("s1", v2, "bulk", now=100.0)
    book.mark("s1", v1, "bulk", now=100.0)
    book.mark("s1", messages.Status(v=messages.VERSION, gw="gwA", seq=5, t=1, online=True), "status", now=100.0)
    out = book.due(now=100.0)
    assert [t for t, _ in out] == [topics.receipts("s1", "gwA")]
    assert out[0][1].streams == [messages.StreamReceipt(stream="bulk", low=1, upto=1)]
    for seq in range(2, 50):
        book.written("s1", "gwA", "bulk", seq, now=100.2)
    assert book.due(now=100.5) == []  # at most one a second per gateway
    assert book.next_due_in(now=100.5) == pytest.approx(0.5)
    (_, rct), = book.due(now=101.0)
    assert rct.streams == [messages.StreamReceipt(stream="bulk", low=1, upto=49)]
    gap = messages.Gap(v=messages.VERSION, gw="gwA", seq=1, t=1, stream="bulk", first_seq=60, last_seq=70, count=11,
                       reason="quota")
    book.mark("s1", gap, "events", now=102.0)
    (_, rct), = book.due(now=102.0)
    streams = {s.stream: s for s in rct.streams}
    assert streams["bulk"].above == [(60, 70)] and streams["events"].upto == 1
    assert book.due(now=5000.0) == [] and len(book) == 0  # idle gateways are forgotten


def test_ledger_resends_skipped_records_sooner_than_silent_ones() -> None:
    led = Ledger(timeout_s=1.0, silence_s=10.0)
    for rid, seq in [(1, 1), (2, 2), (3, 3)]:
        led.sent(rid, "bulk", seq, created=0.0)
    assert led.inflight() == 3
    for rid in (1, 2, 3):
        assert led.acked(rid, now=0.0)
    assert led.due(now=5.0) == []  # the cloud is silent: wait for silence_s
    assert led.receipt("bulk", [(2, 3)]) == [2, 3]  # newer ones receipted, 1 was skipped
    assert led.due(now=0.5) == [] and led.due(now=1.0) == [1]
    led.sent(1, "bulk", 1, created=0.0)  # the re-send
    assert led.resent == 1 and led.due(now=100.0) == []  # in flight again
    led.acked(1, now=2.0)
    assert led.due(now=3.5) == []  # its second wait is twice as long (and nothing newer was receipted)
    assert led.due(now=22.0) == [1]  # silence_s * 2
    led.sent(7, "bulk", 7, created=0.0)
    assert led.unacked() == [7] and len(led) == 1  # the link dropped before its PUBACK; 1 awaits a receipt
    assert led.acked(7, now=1.0) is False


def test_hand_over_republishes_what_waited_for_a_receipt(tmp_path: Path) -> None:
    """A link handover: what the old link published and was still waiting to hear about is read again."""
    box = Outbox(tmp_path / "o.sqlite", "gw1")
    try:
        seq = box.append("bulk", raw(1))
        box.flush()
        up = Uplink(box, "127.0.0.1", 1, "s1", "gw1")
        (rec,) = box.read(10, up.ledger, {}, True)
        up.ledger.sent(rec.id, rec.stream, rec.seq, rec.created)
        up.ledger.acked(rec.id, 0.0)
        assert box.read(10, up.ledger, {}) == []  # waiting for its receipt: not published again
        assert up.hand_over() == 1 and up.unreceipted == 0
        assert [r.seq for r in box.read(10, up.ledger, {})] == [seq]
    finally:
        box.close()


def test_receipt_codec_is_strict() -> None:
    rct = messages.Receipt(v=messages.VERSION, gw="g", t=1, streams=[messages.StreamReceipt("bulk", 1, 9, [(11, 12)])])
    assert codec.decode_receipt(codec.encode_receipt(rct)) == rct
    for bad, reason in [(b"\x00" * (codec.MAX_RECEIPT + 1), "oversize"), (b"\xc1", "malformed"),
                        (msgspec.msgpack.encode({"k": "rct", "v": 1, "gw": "g", "t": 1, "streams": []}), "version"),
                        (msgspec.msgpack.encode({"k": "rct", "v": 2, "gw": "g", "t": 1, "streams": [["bulk", "x", 1]]}),
                         "schema")]:
        with pytest.raises(codec.WireError) as info:
            codec.decode_receipt(bad)
        assert info.value.reason == reason
    v1 = raw(1)
    v1.v, v1.gw, v1.seq = messages.V1, "g", 1
    assert codec.decode(codec.encode(v1)).v == messages.V1  # a v2 peer accepts v1 messages


@pytest.mark.integration
async def test_v2_gateway_forgets_only_receipted_and_v1_gateway_still_flows(broker: Mosquitto, influx: Influxd,
                                                                           unique: str, tmp_path: Path) -> None:
    db = InfluxWriter(influx.url, unique)
    await db.create_database()
    worker = IngestWorker("127.0.0.1", broker.port, InfluxWriter(influx.url, unique), client_id=f"i-{unique}",
                          group=unique, flush_s=0.2, deadletter_dir=tmp_path / "dl", end_session_on_stop=True)
    new_box = Outbox(tmp_path / "v2.sqlite", f"{unique}a")
    old_box = Outbox(tmp_path / "v1.sqlite", f"{unique}b", wire_version=messages.V1)
    new = Uplink(new_box, "127.0.0.1", broker.port, "s1", f"{unique}a", status_interval_s=0.3)
    old = Uplink(old_box, "127.0.0.1", broker.port, "s1", f"{unique}b")
    assert new.receipts and not old.receipts
    comps: list[IngestWorker | Uplink] = [worker, new, old]
    for c in comps:
        await c.start()
    tasks = [asyncio.create_task(c.run()) for c in comps]
    waiting: list[int] = []
    try:
        while not worker.connected:  # noqa: ASYNC110 - waiting for the subscription
            await asyncio.sleep(0.05)
        for i in range(1, 301):
            new_box.append("bulk", raw(i))
            old_box.append("bulk", raw(i))
            if i % 50 == 0:
                await asyncio.sleep(0.2)
                waiting.append(new.unreceipted)
        got_new = await wait_for_count(db, "raw", f"{unique}a", 300)
        got_old = await wait_for_count(db, "raw", f"{unique}b", 300)
        for _ in range(100):
            if new_box.backlog() == 0 and old_box.backlog() == 0:
                break
            await asyncio.sleep(0.05)
        st = await db.rows(f"SELECT last(unreceipted) AS u FROM status WHERE gateway = '{unique}a'")
    finally:
        for c in comps:
            await c.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        new_box.close()
        old_box.close()
        await db.close()
    assert_exactly_once(got_new, 300)
    assert_exactly_once(got_old, 300)
    assert new_box.backlog() == 0 and old_box.backlog() == 0
    assert new.acked >= 300 and new.ledger.receipted == 300 and new.resent == 0 and new.unreceipted == 0
    assert old.receipts_received == 0  # no receipts for a v1 gateway: it forgets at PUBACK
    assert any(n > 0 for n in waiting)  # records waited for their receipt
    assert st and "u" in st[0]  # the status point carries the unreceipted count
    # coalesced: about one receipt a second for the v2 gateway, never one per message
    assert 1 <= new.receipts_received <= 12 and worker.receipts.sent == new.receipts_received


@pytest.mark.integration
async def test_receipts_of_another_gateway_are_not_delivered_to_it(broker: Mosquitto, unique: str,
                                                                   tmp_path: Path) -> None:
    """A receipt on another gateway's topic never reaches this one; a garbled one is counted, not applied."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    box = Outbox(tmp_path / "o.sqlite", unique)
    up = Uplink(box, "127.0.0.1", broker.port, "s1", unique)
    box.append("bulk", raw(1))
    await up.start()
    task = asyncio.create_task(up.run())
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    sub.connect("127.0.0.1", broker.port)  # a subscriber, so the broker does not answer PUBACK 0x10
    sub.subscribe(f"pg/v1/s1/{unique}/bulk", qos=1)
    sub.loop_start()
    try:
        for _ in range(100):
            if up.unreceipted == 1 and up.ledger.inflight() == 0:
                break
            await asyncio.sleep(0.05)
        other = messages.Receipt(v=2, gw="other", t=1, streams=[messages.StreamReceipt("bulk", 1, 1)])
        pub.publish(topics.receipts("s1", "other"), codec.encode_receipt(other), qos=1).wait_for_publish(5)
        pub.publish(topics.receipts("s1", unique), b"garbage", qos=1).wait_for_publish(5)
        wrong = messages.Receipt(v=2, gw="other", t=1, streams=[messages.StreamReceipt("bulk", 1, 1)])
        pub.publish(topics.receipts("s1", unique), codec.encode_receipt(wrong), qos=1).wait_for_publish(5)
        for _ in range(100):
            if up.receipt_errors >= 2:
                break
            await asyncio.sleep(0.05)
        assert up.receipt_errors == 2 and up.unreceipted == 1 and box.backlog() == 1
        good = messages.Receipt(v=2, gw=unique, t=1, streams=[messages.StreamReceipt("bulk", 1, 1)])
        pub.publish(topics.receipts("s1", unique), codec.encode_receipt(good), qos=1).wait_for_publish(5)
        for _ in range(100):
            if box.backlog() == 0:
                break
            await asyncio.sleep(0.05)
        assert box.backlog() == 0 and up.unreceipted == 0
    finally:
        for c in (pub, sub):
            c.disconnect()
            c.loop_stop()
        await up.stop()
        await task
        box.close()


def test_probe_backs_off_only_on_its_own_no_subscriber_answers() -> None:
    from edge.uplink_probe import PROBE_MAX_S, PROBE_MIN_S, Probe

    p = Probe()
    assert p.space(0.0, inflight=5) is None  # not probing: no limit of its own
    assert p.no_subscribers(mid=1, now=10.0) is True  # the first 0x10 starts a spell
    assert p.space(10.0, 0) == 0 and p.space(10.0 + PROBE_MIN_S, 0) == 1
    assert p.no_subscribers(mid=2, now=10.01) is False and p.delay_s == PROBE_MIN_S  # rest of the old window
    p.published(mid=7)
    assert p.space(10.1, inflight=1) == 0  # one probe at a time
    for _ in range(10):
        p.no_subscribers(mid=7, now=11.0)  # the probe itself: wait longer, up to the cap
    assert p.delay_s == PROBE_MAX_S
    assert p.accepted() is True and p.space(20.0, 3) is None and p.accepted() is False


def test_resends_respect_the_lanes_the_budget_holds(tmp_path: Path) -> None:
    """On a metered link over budget the bulk lane is held: its unreceipted records are not re-sent until
    it opens, while an alarm's re-send still goes."""
    import paho.mqtt.client as mqtt

    from edge.outbox import LANE_BULK
    from tests.uplink_fixtures import alarm

    class Client:  # records what would go on the wire (the publish path itself is tested against mosquitto)
        def __init__(self) -> None:
            self.topics: list[str] = []
            self.mid = 0

        def publish(self, topic: str, payload: bytes, qos: int) -> mqtt.MQTTMessageInfo:
            self.mid += 1
            self.topics.append(topic)
            info = mqtt.MQTTMessageInfo(self.mid)
            info.rc = mqtt.MQTT_ERR_SUCCESS
            return info

    box = Outbox(tmp_path / "o.sqlite", "gw1")
    try:
        box.append("bulk", raw(1))
        box.append("alarms", alarm(1))
        box.flush()
        up = Uplink(box, "127.0.0.1", 1, "s1", "gw1")
        for rec in box.read(10, up.ledger, {}, True):
            up.ledger.sent(rec.id, rec.stream, rec.seq, rec.created)
            up.ledger.acked(rec.id, 0.0)
        up.held_lanes = lambda: frozenset({LANE_BULK})
        client = Client()
        asyncio.run(up._resend(client, up.ledger.due(1e6)))  # type: ignore[arg-type]
        assert len(client.topics) == 1 and "alarms" in client.topics[0] and up.resent == 1
        assert up.unreceipted == 2  # the bulk record still waits for its receipt
        up.held_lanes = frozenset
        asyncio.run(up._resend(client, up.ledger.due(1e6)))  # type: ignore[arg-type]
        assert "bulk" in client.topics[-1] and up.resent >= 2
    finally:
        box.close()
