"""Pre-arrival notices in the cloud: route each to its hospital, feed the ED, carry the ED's ack back.

:class:`ArrivalsService` (a supervisor component, not essential: the ingest
goes on without it) subscribes, on every configured broker (the cloud broker
and, for an ambulance fleet with a base Wi-Fi broker, that one too), to
``pg/v1/+/+/notices`` (a plain subscription beside the ingest's shared one,
which stores every revision in InfluxDB for the journey record).

- :class:`Board` keeps the newest revision of each active notice by hospital
  (an older or repeated revision, e.g. a QoS 1 re-send after a link
  handover, changes nothing) for the arrivals page (cloud/arrivals_api.py);
- each new revision is published as JSON, retained, on
  ``pg/ed/v1/{hospital}/arrivals/{notice_id}`` for the ED's own systems, and
  removed (empty retained message) ``keep_s`` after arrival or cancellation.
  At start the service reads those retained documents back: a restart
  forgets nothing that is still on its way;
- the ED acknowledges on the board page or with JSON ``{"notice_id", "rev"}``
  on ``pg/ed/v1/{hospital}/ack``; the service then publishes a
  :class:`wire.messages.NoticeAck`, retained, on
  ``pg/v1/{site}/{gateway}/down/notice_acks`` on every broker (the ambulance may be
  on either link), and the crew sees it.

Notices are decoded strictly (wire.codec.decode); a message that is not a
notice, or whose ``gw`` is not the topic's gateway, is counted and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from runtime.configbase import Section
from runtime.logs import get_logger
from runtime.supervisor import Tier
from runtime.tasks import cancel_and_wait
from wire import codec, topics
from wire.messages import VERSION, Notice, NoticeAck

log = get_logger("cloud.arrivals")


class BrokerConfig(Section):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 8883
    username: str | None = None
    password_file: str | None = None
    tls_ca_file: str | None = None


class ArrivalsConfig(Section):
    """``[arrivals]``: off by default; ``brokers`` defaults to the ingest's broker."""

    enabled: bool = False
    brokers: list[BrokerConfig] = Field(default_factory=list)
    keep_s: Annotated[float, Field(ge=0, le=7 * 86400)] = 1800.0


def notice_json(msg: Notice, site: str, acked_rev: int = 0) -> dict[str, Any]:
    """The ED feed's document (also what the arrivals page shows)."""
    pos = msg.position
    return {
        "notice_id": msg.notice_id, "rev": msg.rev, "state": msg.state, "hospital": msg.hospital,
        "gateway": msg.gw, "site": site, "complaint": msg.complaint, "bed": msg.bed, "patient": msg.patient,
        "t": msg.t // 1_000_000, "t_alert": msg.t_alert // 1_000_000, "eta_s": msg.eta_s,
        "eta_method": "straight-line x route factor", "distance_m": msg.distance_m,
        "position": None if pos is None else {"lat": pos.lat, "lon": pos.lon, "speed_kmh": pos.speed_kmh,
                                               "fix": pos.fix, "t": pos.t // 1_000_000},
        "vitals": {v.param: v.value for v in msg.vitals},
        "news2": [[t * 1000, s] for t, s in msg.news2],
        "alarms": [{"priority": a.priority, "condition": a.condition, "t": a.t * 1000} for a in msg.alarms],
        "acked_rev": acked_rev,
    }


@dataclass
class Entry:
    doc: dict[str, Any]
    received: float  # wall time the newest revision arrived here
    done_at: float | None = None
    history: list[tuple[float, int]] = field(default_factory=list)  # (received, rev)


class Board:
    """Newest revision per notice; what the page and the ED feed show. Pure: no I/O."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.entries: dict[str, Entry] = {}
        self.stale_revisions = 0

    def update(self, doc: dict[str, Any]) -> bool:
        """True when ``doc`` is newer than what the board shows (then it is shown)."""
        nid = str(doc["notice_id"])
        old = self.entries.get(nid)
        if old is not None and int(old.doc["rev"]) >= int(doc["rev"]):
            self.stale_revisions += 1
            return False
        now = self.clock()
        e = Entry(dict(doc), now, history=(old.history if old else [])[-50:])
        if old is not None:
            e.doc["acked_rev"] = max(int(old.doc.get("acked_rev", 0)), int(doc.get("acked_rev", 0)))
        e.history.append((now, int(doc["rev"])))
        if doc["state"] != "active":
            e.done_at = now
        self.entries[nid] = e
        return True

    def ack(self, hospital: str, notice_id: str, rev: int | None) -> dict[str, Any] | None:
        e = self.entries.get(notice_id)
        if e is None or e.doc["hospital"] != hospital:
            return None
        rev = int(e.doc["rev"]) if rev is None else min(int(rev), int(e.doc["rev"]))
        e.doc["acked_rev"] = max(int(e.doc.get("acked_rev", 0)), rev)
        return e.doc

    def for_hospital(self, hospital: str | None) -> list[dict[str, Any]]:
        now = self.clock()
        out = []
        for e in self.entries.values():
            if hospital is None or e.doc["hospital"] == hospital:
                out.append({**e.doc, "received_age_s": round(now - e.received, 1)})
        out.sort(key=lambda d: (d["state"] != "active", d["eta_s"] if d["eta_s"] is not None else 1e9))
        return out

    def expire(self, keep_s: float) -> list[dict[str, Any]]:
        now = self.clock()
        gone = [nid for nid, e in self.entries.items() if e.done_at is not None and now - e.done_at >= keep_s]
        return [self.entries.pop(nid).doc for nid in gone]


class ArrivalsService:
    name = "arrivals"
    tier = Tier.SINK
    essential = False

    def __init__(self, brokers: list[tuple[str, int, str | None, str | None, str | None]], keep_s: float = 1800.0,
                 client_id: str = "pg-arrivals") -> None:
        if not brokers:
            raise ValueError("arrivals: no broker")
        self.brokers = brokers
        self.keep_s = keep_s
        self.client_id = client_id
        self.board = Board()
        self.received = 0
        self.rejected = 0
        self.acks_sent = 0
        self.connected: list[bool] = [False] * len(brokers)
        self._clients: dict[int, Any] = {}
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()

    async def start(self) -> None:
        self._stop = asyncio.Event()

    async def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._broker(i), name=f"arrivals[{i}]") for i in range(len(self.brokers))]
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 5.0)
                for doc in self.board.expire(self.keep_s):
                    await self._publish(0, topics.ed_notice(doc["hospital"], doc["notice_id"]), b"", retain=True)
        finally:
            await cancel_and_wait(tasks)

    # ---- incoming ---------------------------------------------------------------------------------------
    async def handle_notice(self, topic: str, payload: bytes) -> None:
        try:
            site, gateway, stream = topics.parse_uplink(topic)
            msg = codec.decode(payload)
        except (topics.TopicError, codec.WireError):
            self.rejected += 1
            return
        if not isinstance(msg, Notice) or msg.gw != gateway or stream != "notices":
            self.rejected += 1
            return
        self.received += 1
        if self.board.update(notice_json(msg, site)):
            doc = self.board.entries[msg.notice_id].doc
            await self._publish(0, topics.ed_notice(msg.hospital, msg.notice_id), json.dumps(doc).encode(),
                                retain=True)
            self._changed.set()

    def restore(self, payload: bytes) -> None:
        """A retained ED-feed document read back at start."""
        if not payload:
            return
        try:
            doc = json.loads(payload)
            if isinstance(doc, dict) and {"notice_id", "rev", "hospital", "state", "gateway", "site"} <= set(doc):
                self.board.update(doc)
        except ValueError:
            self.rejected += 1

    async def acknowledge(self, hospital: str, notice_id: str, rev: int | None = None, by: str = "ed") -> bool:
        doc = self.board.ack(hospital, notice_id, rev)
        if doc is None:
            return False
        ack = NoticeAck(v=VERSION, gw=str(doc["gateway"]), seq=0, notice_id=notice_id, rev=int(doc["acked_rev"]),
                        t=time.time_ns(), hospital=hospital, by=by)
        payload = codec.encode(ack)
        topic = topics.notice_acks(str(doc["site"]), str(doc["gateway"]))
        for i in range(len(self.brokers)):
            await self._publish(i, topic, payload, retain=True)
        await self._publish(0, topics.ed_notice(hospital, notice_id), json.dumps(doc).encode(), retain=True)
        self.acks_sent += 1
        return True

    async def _ed_ack(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        try:
            req = json.loads(payload[:4096])
            hospital = topics.check_id("hospital", parts[3])
            ok = await self.acknowledge(hospital, str(req["notice_id"]), int(req["rev"]) if "rev" in req else None)
        except (ValueError, KeyError, TypeError, IndexError):
            ok = False
        if not ok:
            self.rejected += 1

    # ---- MQTT ---------------------------------------------------------------------------------------------
    async def _publish(self, i: int, topic: str, payload: bytes, retain: bool) -> None:
        import aiomqtt

        client = self._clients.get(i)
        if client is None:
            log.warning("arrivals_publish_skipped", broker=i, reason="not connected")
            return
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(topic, payload, qos=1, retain=retain)

    async def _broker(self, i: int) -> None:
        import aiomqtt

        host, port, username, password, ca = self.brokers[i]
        tls = aiomqtt.TLSParameters(ca_certs=ca) if ca else None
        backoff = 0.5
        while True:
            try:
                async with aiomqtt.Client(host, port, identifier=f"{self.client_id}-{i}", username=username,
                                          password=password, tls_params=tls, timeout=10) as client:
                    await client.subscribe(topics.notices_filter(), qos=1)
                    if i == 0:
                        await client.subscribe(topics.ed_ack_filter(), qos=1)
                        await client.subscribe(topics.ed_notices_filter(), qos=1)
                    self._clients[i] = client
                    self.connected[i] = True
                    backoff = 0.5
                    log.info("arrivals_connected", broker=i, host=host, port=port)
                    async for m in client.messages:
                        t = str(m.topic)
                        data = bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else b""
                        if t.startswith(topics.PREFIX + "/"):
                            await self.handle_notice(t, data)
                        elif t.endswith("/ack"):
                            await self._ed_ack(t, data)
                        else:
                            self.restore(data)
            except aiomqtt.MqttError as exc:
                log.warning("arrivals_link_down", broker=i, error=str(exc)[:160])
            finally:
                self._clients.pop(i, None)
                self.connected[i] = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
