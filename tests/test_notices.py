"""Pre-arrival notices: when the gateway sends an update (fake clocks), acks, the board's ordering, and the
cloud arrivals service on a real broker (ED feed retained, ack over MQTT back to the gateway's topic,
state restored after a restart, stale and foreign messages counted)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from bench.localservices import Mosquitto
from cloud.arrivals import ArrivalsService, Board
from edge.notices import NoticeError, NoticeSender
from edge.position import PositionTracker
from firmware_bridge.nmea import Fix
from wire import codec, topics
from wire.messages import VERSION, Message, Notice, NoticeAck, Summary

DEST = (52.3702, 4.8952)


class World:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0
        self.m = 100.0
        self.values: dict[str, float] = {"spo2": 97.0, "heart_rate": 80.0}
        self.news2: int | None = 1
        self.alarms: list[dict[str, Any]] = []
        self.sent: list[Notice] = []

    def snapshot(self) -> dict[str, Any]:
        return {"beds": [{"bed": "stretcher", "news2": self.news2,
                          "values": {k: {"v": v, "stale": False} for k, v in self.values.items()}}],
                "alarms": self.alarms}

    def publish(self, stream: str, msg: Message) -> None:
        assert stream == "notices" and isinstance(msg, Notice)
        self.sent.append(msg)


def sender(w: World) -> NoticeSender:
    tr = PositionTracker()
    tr.on_fix(Fix(w.t, True, 52.33, 4.83, 40.0))
    return NoticeSender("amb-1", w.publish, w.snapshot, lambda bed: "ab" * 16, tr,
                        {"city-general": DEST, "st-marys": (52.34, 4.87)}, min_gap_s=2.0, refresh_s=300.0,
                        clock=lambda: w.t, mono=lambda: w.m)


def step(w: World, s: NoticeSender, dt: float) -> None:
    w.t += dt
    w.m += dt
    s.tick()


def test_updates_follow_the_patient() -> None:
    w = World()
    s = sender(w)
    with pytest.raises(NoticeError):
        s.request("mars", "stemi", "stretcher")
    with pytest.raises(NoticeError):
        s.request("city-general", "headache", "stretcher")  # categories only, no free text
    with pytest.raises(NoticeError):
        s.finish("arrived")
    s.request("city-general", "stroke", "stretcher")
    assert [m.rev for m in w.sent] == [1] and w.sent[0].eta_s and w.sent[0].news2[-1][1] == 1
    step(w, s, 5)
    assert len(w.sent) == 1  # nothing changed
    w.values["spo2"] = 96.0
    step(w, s, 5)
    assert len(w.sent) == 1  # within its step (3 %)
    w.values["spo2"] = 91.0
    step(w, s, 1)
    assert len(w.sent) == 2 and {v.param: v.value for v in w.sent[-1].vitals}["spo2"] == 91.0
    w.news2 = 5
    step(w, s, 0.5)
    assert len(w.sent) == 2  # min gap
    step(w, s, 2)
    assert len(w.sent) == 3 and [x[1] for x in w.sent[-1].news2] == [1, 5]
    w.alarms = [{"alarm_id": "a1", "bed": "stretcher", "priority": "high", "condition": "spo2_low", "t": w.t}]
    step(w, s, 2)
    assert len(w.sent) == 4 and w.sent[-1].alarms[0].condition == "spo2_low"
    step(w, s, 301)
    assert len(w.sent) == 5  # refresh
    assert all(m.notice_id == w.sent[0].notice_id for m in w.sent)
    assert [m.rev for m in w.sent] == [1, 2, 3, 4, 5]
    # re-targeted: the first hospital is stood down, a new notice goes to the second
    s.request("st-marys", "stroke", "stretcher")
    assert w.sent[-2].state == "cancelled" and w.sent[-2].hospital == "city-general"
    assert w.sent[-1].hospital == "st-marys" and w.sent[-1].rev == 1 and w.sent[-1].notice_id != w.sent[0].notice_id


def test_acks_are_matched() -> None:
    w = World()
    s = sender(w)
    s.request("city-general", "stemi", "stretcher")
    nid = w.sent[0].notice_id
    s.on_ack(NoticeAck(v=VERSION, gw="amb-1", seq=0, notice_id="other", rev=1, t=0, hospital="city-general"))
    s.on_ack(NoticeAck(v=VERSION, gw="amb-1", seq=0, notice_id=nid, rev=9, t=0, hospital="city-general"))
    s.on_ack(NoticeAck(v=VERSION, gw="amb-1", seq=0, notice_id=nid, rev=1, t=0, hospital="st-marys"))
    assert s.rejected_acks == 3 and not s.state()["notice"]["acked"]
    s.on_ack(NoticeAck(v=VERSION, gw="amb-1", seq=0, notice_id=nid, rev=1, t=10**18, hospital="city-general"))
    st = s.state()["notice"]
    assert st["acked"] and st["acked_rev"] == 1 and st["eta_method"] == "straight-line"


def test_board_keeps_the_newest_revision() -> None:
    now = [1000.0]
    b = Board(lambda: now[0])
    doc = {"notice_id": "n1", "rev": 2, "hospital": "h", "state": "active", "eta_s": 300, "acked_rev": 0}
    assert b.update(doc)
    assert not b.update({**doc, "rev": 1}) and not b.update(doc)  # older and repeated (a re-send) change nothing
    assert b.stale_revisions == 2
    assert b.update({**doc, "notice_id": "n2", "eta_s": 100})
    assert [d["notice_id"] for d in b.for_hospital("h")] == ["n2", "n1"]  # soonest first
    assert b.ack("other", "n1", 2) is None and b.ack("h", "n1", 7)["acked_rev"] == 2  # type: ignore[index]
    assert b.update({**doc, "rev": 3, "state": "arrived"})
    assert b.entries["n1"].doc["acked_rev"] == 2  # the ack survives the next revision
    now[0] += 10
    assert [d["notice_id"] for d in b.expire(5)] == ["n1"]


def notice(gw: str, rev: int, hospital: str = "city-general") -> Notice:
    return Notice(v=VERSION, gw=gw, seq=rev, notice_id="0123abcd", rev=rev, t=rev * 10**9, t_alert=10**9,
                  hospital=hospital, complaint="trauma", bed="stretcher", patient="cd" * 16, eta_s=600 - rev)


async def test_arrivals_service_on_a_real_broker(broker: Mosquitto, unique: str, tmp_path: Path) -> None:
    svc = ArrivalsService([("127.0.0.1", broker.port, None, None, None)], client_id=f"arr-{unique}")
    await svc.start()
    task = asyncio.create_task(svc.run())
    gw = f"amb-{unique}"
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"gw-{unique}") as c:
            await c.subscribe(topics.notice_acks("ems", gw), qos=1)
            await asyncio.sleep(0.5)
            while not svc.connected[0]:  # noqa: ASYNC110 - a flag set by the service
                await asyncio.sleep(0.1)
            up = topics.uplink("ems", gw, "notices")
            await c.publish(up, codec.encode(notice(gw, 1)), qos=1)
            await c.publish(up, codec.encode(notice(gw, 1)), qos=1)  # a QoS 1 re-send
            await c.publish(up, codec.encode(notice("someone-else", 2)), qos=1)  # gw mismatch
            await c.publish(up, b"\x00garbage", qos=1)
            summary = Summary(v=VERSION, gw=gw, seq=1, interval_s=1.0, items=[])
            await c.publish(up, codec.encode(summary), qos=1)  # not a notice
            await c.publish(up, codec.encode(notice(gw, 2)), qos=1)
            for _ in range(50):
                if svc.received >= 3:
                    break
                await asyncio.sleep(0.1)
            assert svc.received == 3 and svc.rejected == 3 and svc.board.stale_revisions >= 1
            # the ED's own system acknowledges over MQTT; the gateway's topic gets the NoticeAck (retained)
            await c.publish(topics.ed_ack("city-general"), json.dumps({"notice_id": "0123abcd", "rev": 2}), qos=1)
            await c.publish(topics.ed_ack("city-general"), b"not json", qos=1)
            async with asyncio.timeout(10):
                async for m in c.messages:
                    ack = codec.decode(bytes(m.payload))  # type: ignore[arg-type]
                    break
            assert isinstance(ack, NoticeAck) and ack.rev == 2 and ack.hospital == "city-general"
    finally:
        await svc.stop()
        await asyncio.wait_for(task, 10)
    # a restarted service reads the retained ED feed back
    svc2 = ArrivalsService([("127.0.0.1", broker.port, None, None, None)], client_id=f"arr2-{unique}")
    await svc2.start()
    task2 = asyncio.create_task(svc2.run())
    try:
        for _ in range(50):
            if "0123abcd" in svc2.board.entries:
                break
            await asyncio.sleep(0.1)
        e = svc2.board.entries["0123abcd"]
        assert e.doc["rev"] == 2 and e.doc["acked_rev"] == 2 and e.doc["gateway"] == gw
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"clean-{unique}") as c:  # leave no retained
            await c.publish(topics.ed_notice("city-general", "0123abcd"), b"", qos=1, retain=True)
            await c.publish(topics.notice_acks("ems", gw), b"", qos=1, retain=True)
    finally:
        await svc2.stop()
        await asyncio.wait_for(task2, 10)


def test_ambulance_config_is_checked(tmp_path: Path) -> None:
    from edge.config import load_edge_config
    from runtime.configload import ConfigError

    base = '[gateway]\nid = "amb-1"\nsite = "ems"\npseudonym_key = "k"\n'
    hospital = '[[ambulance.hospitals]]\nid = "h1"\nlat = 52.0\nlon = 4.0\n'
    cases = {
        "no hospital": base.replace('site = "ems"', 'site = "ems"\nkind = "ambulance"') + "[ambulance]\n",
        "ward with ambulance": base + hospital,
        "free text complaint list": base.replace('site = "ems"', 'site = "ems"\nkind = "ambulance"') + hospital
        + '[[ambulance.hospitals]]\nid = "bad id!"\nlat = 1\nlon = 1\n',
        "links repeat": base + '[uplink]\n[[uplink.links]]\nname = "a"\nhost = "x"\n[[uplink.links]]\nname = "a"\n'
        'host = "y"\n',
    }
    for name, text in cases.items():
        p = tmp_path / "e.toml"
        p.write_text(text)
        with pytest.raises(ConfigError):
            load_edge_config(p)
        assert name
    p = tmp_path / "ok.toml"
    p.write_text(base.replace('site = "ems"', 'site = "ems"\nkind = "ambulance"') + hospital
                 + '[uplink]\n[uplink.budget]\nbytes_per_hour = 4096\n')
    cfg = load_edge_config(p)
    assert cfg.gateway.kind == "ambulance" and cfg.uplink is not None and cfg.uplink.budget is not None


def test_acks_stay_out_of_the_ingest_subscription() -> None:
    """The cloud publishes acks on the cloud broker: the ingest's per-stream subscriptions never receive them."""
    t = topics.notice_acks("ems", "amb-1")
    filters = topics.ingest_filters()
    assert len(t.split("/")) == 6 and all(len(f.split("/")) == 2 + 5 for f in filters)
    assert f"$share/ingest/pg/v1/+/+/{topics.DOWNLINK_NOTICE_ACKS}" not in filters
    assert "$share/ingest/pg/v1/+/+/notices" in filters  # the notices themselves are written to InfluxDB
    with pytest.raises(topics.TopicError):
        topics.parse_uplink(t)
    assert topics.parse_uplink(topics.uplink("ems", "amb-1", "notices")) == ("ems", "amb-1", "notices")
