"""The gateway's MQTT uplink: outbox records -> cloud broker, deleted once the cloud receipted them.

One paho-mqtt 2 client per connection, MQTT 5, clean start off with a session
expiry, QoS 1, up to ``max_inflight`` records in flight. paho's network thread
does the socket work; its callbacks hand PUBACKs to the event loop with
``call_soon_threadsafe``, and the loop deletes each acknowledged record from
the outbox (a non-blocking hand-off to the outbox writer thread). Nothing here
waits on the network or the disk on the event loop (connects and outbox reads
run in worker threads).

Contract v2 (``receipts``, the default): the broker's PUBACK only starts a
record's receipt timer; the record is deleted when a receipt from the ingest
(``pg/v1/{site}/{gw}/receipts``, QoS 1, subscribed on the persistent session)
names it, and re-sent when none came in time (edge/receipt_ledger.py). So a
broker crash, a lost receipt or an ingest worker dying after its write loses
nothing. A v1 uplink (``receipts=False``, its outbox stamping ``v = 1``)
deletes at PUBACK, as contract v1 did. In both, a PUBACK 0x10 "no matching
subscribers" (mosquitto after a restart, before the ingest re-subscribed its
shared subscription) keeps the record: the uplink probes with one record,
backing off from 50 ms to 2 s, until the broker has a subscriber again. That
replaced v1's fixed 1 s resume hold-off (``resume_holdoff_s``, now 0).

When a connection drops, the client object and its unacknowledged messages are
discarded; the next connection republishes everything in the outbox that was
not PUBACKed. A record whose PUBLISH reached the broker but whose PUBACK was
lost is sent again: that is QoS 1's at-least-once, and the cloud's idempotent
points turn it into an overwrite, not a double.

Gateway status: a retained :class:`wire.messages.Status` on
``pg/v1/{site}/{gw}/status`` at connect and every ``status_interval_s`` (backlog,
oldest unsent age, unreceipted count and oldest unreceipted age), a retained
last-will "offline" status, and an explicit offline status on a clean stop.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.outbox import Outbox, Record
from edge.receipt_ledger import Ledger
from edge.uplink_callbacks import UplinkCallbacks
from edge.uplink_config import UplinkConfig, open_outbox
from edge.uplink_probe import Probe
from runtime.configbase import read_optional_secret
from runtime.logs import get_logger
from runtime.supervisor import Tier
from wire import codec, messages, topics

log = get_logger("edge.uplink")

__all__ = ["Uplink", "UplinkConfig", "open_outbox"]


class Uplink(UplinkCallbacks):
    """Outbox -> broker; the paho side (client and callbacks) is edge/uplink_callbacks.py."""

    name = "uplink"
    tier = Tier.SINK
    essential = False  # see runtime/supervisor.py

    def __init__(
        self,
        outbox: Outbox,
        host: str,
        port: int,
        site: str,
        gateway: str,
        client_id: str | None = None,
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        session_expiry_s: int = 7 * 24 * 3600,
        max_inflight: int = 1000,
        keepalive_s: int = 30,
        status_interval_s: float = 10.0,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        software: str = "",
        resume_holdoff_s: float = 0.0,
        receipts: bool | None = None,
        receipt_timeout_s: float = 5.0,
        receipt_silence_s: float = 300.0,
        max_unreceipted: int = 10000,
    ) -> None:
        self.outbox = outbox
        self.host, self.port = host, port
        self.site = topics.check_id("site", site)
        self.gateway = topics.check_id("gateway", gateway)
        self.client_id = client_id or f"pg-{gateway}"
        self.tls = (tls_ca_file, tls_cert_file, tls_key_file)
        self.username, self.password = username, password
        self.session_expiry_s = session_expiry_s
        self.max_inflight = max(1, max_inflight)
        self.keepalive_s = keepalive_s
        self.status_interval_s = status_interval_s
        self.reconnect = (reconnect_min_s, reconnect_max_s)
        self.software = software
        self.drain_timeout_s = 5.0
        self.resume_holdoff_s = resume_holdoff_s
        self._was_lost = False
        # contract v2 receipts (default: what the outbox stamps); a v1 outbox cannot take receipts
        self.receipts = outbox.wire_version >= 2 if receipts is None else receipts
        if self.receipts and outbox.wire_version < 2:
            raise ValueError("uplink: receipts need a contract v2 outbox")
        self.ledger = Ledger(receipt_timeout_s, receipt_silence_s)
        self.max_unreceipted = max(1, max_unreceipted)
        self.receipts_received = 0
        self.receipt_errors = 0
        self.no_subscribers = 0
        self._probe = Probe()  # after PUBACK 0x10 (edge/uplink_probe.py)
        self._rescan = False
        self.models: dict[str, str] = {}  # set by the model slots; reported in the status
        # link handover and the cellular budget (edge/links.py, edge/budget.py)
        self.bytes_out = 0  # topic + payload of every PUBLISH handed to paho (records and status)
        self.messages_out = 0
        self.held_lanes: Callable[[], frozenset[int]] = frozenset
        self.connected = False
        # counters for /metrics
        self.published = 0
        self.acked = 0
        self.refused = 0
        self.connects = 0
        self.connect_failures = 0
        self.disconnects = 0
        self._stopping = False
        self._wake = asyncio.Event()
        self._halt = asyncio.Event()
        self._inflight: dict[int, int] = {}  # mid -> outbox record id
        self._status_mids: set[int] = set()
        self._acked_ids: list[int] = []
        self._lost = asyncio.Event()
        self._connack: asyncio.Future[tuple[bool, int]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None

    @classmethod
    def from_config(cls, cfg: UplinkConfig, outbox: Outbox, gateway: str, base: Path | None = None,
                    software: str = "", site: str | None = None) -> Uplink:
        password = read_optional_secret(cfg.password_file, base)
        site = cfg.site or site
        if site is None:
            raise ValueError("uplink: no site (set [gateway] site)")
        return cls(outbox, cfg.host, cfg.port, site, gateway, cfg.client_id, cfg.tls_ca_file, cfg.tls_cert_file,
                   cfg.tls_key_file, cfg.username, password, cfg.session_expiry_s, cfg.max_inflight, cfg.keepalive_s,
                   cfg.status_interval_s, cfg.reconnect_min_s, cfg.reconnect_max_s, software, cfg.resume_holdoff_s,
                   cfg.receipts, cfg.receipt_timeout_s, cfg.receipt_silence_s, cfg.max_unreceipted)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def resent(self) -> int:
        """Records re-sent because no receipt came in time."""
        return self.ledger.resent

    @property
    def unreceipted(self) -> int:
        return len(self.ledger) if self.receipts else 0

    def hand_over(self) -> int:
        """This uplink becomes the active link (edge/links.py): forget what it published before and is still
        waiting to hear about. Those receipts go, or went, to the session on another broker, so the records are
        published again here (an overwrite in the cloud if they arrived); returns how many."""
        n = self.ledger.clear()
        if n:
            log.info("uplink_republishing_after_handover", records=n)
        return n

    # ---- Component ---------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._wake = asyncio.Event()
        self._halt = asyncio.Event()
        self.outbox.on_commit = self._commit_hook

    async def run(self) -> None:
        delay = self.reconnect[0]
        while not self._stopping:
            began = time.monotonic()
            await self._session()
            if self._stopping:
                break
            if time.monotonic() - began > 10.0:
                delay = self.reconnect[0]
            await self._sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.reconnect[1])

    async def stop(self) -> None:
        """Drain first: while connected, wait (at most ``drain_timeout_s``) for the outbox to empty, so a clean
        stop sends what the pipeline's final flush produced. Whatever is left stays in the outbox for the
        next start."""
        deadline = time.monotonic() + self.drain_timeout_s
        while self.connected and self.outbox.backlog() > 0 and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.05)
        self._stopping = True
        self._wake.set()
        self._halt.set()

    # ---- one connection ----------------------------------------------------------------

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._make_client()
        self._connack = loop.create_future()
        self._lost = asyncio.Event()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry_s
        try:
            await asyncio.to_thread(client.connect, self.host, self.port, self.keepalive_s, clean_start=False,
                                    properties=props)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.connect_failures += 1
            log.warning("uplink_connect_failed", host=self.host, port=self.port, error=str(exc)[:200])
            return
        client.loop_start()
        self._client = client
        try:
            try:
                ok, rc = await asyncio.wait_for(self._connack, timeout=max(5.0, self.keepalive_s))
            except TimeoutError:
                ok, rc = False, -1
            if not ok:
                self.connect_failures += 1
                log.warning("uplink_connect_refused", reason=rc)
                return
            self.connects += 1
            self.connected = True
            self._probe.reset()
            log.info("uplink_connected", host=self.host, port=self.port, backlog=self.outbox.backlog())
            if self.receipts:
                client.subscribe(topics.receipts(self.site, self.gateway), qos=1)
            if self._was_lost and self.resume_holdoff_s > 0:  # optional (v1): PUBACK 0x10 handling covers it
                await self._sleep(self.resume_holdoff_s)
            self._was_lost = False
            await self._serve(client)
        finally:
            self.connected = False
            self._was_lost = self._was_lost or self._lost.is_set()
            self._release_all()
            if self._stopping and not self._lost.is_set():
                await self._goodbye(client)
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            self._client = None

    async def _serve(self, client: mqtt.Client) -> None:
        cursors: dict[int, int] = {}  # lane -> last id scanned on this connection
        next_status = next_resend = 0.0
        refill = max(1, self.max_inflight // 4)
        while not self._stopping and not self._lost.is_set():
            self._wake.clear()
            self._flush_acks()
            now = time.monotonic()
            if now >= next_status:
                await self._publish_status(client, online=True)
                next_status = now + self.status_interval_s
            if self._rescan:  # records came back (PUBACK 0x10): scan the outbox from the start again
                cursors.clear()
                self._rescan = False
            if self.receipts and now >= next_resend and now >= self._probe.resume_at:
                await self._resend(client, self.ledger.due(now))
                next_resend = now + min(1.0, self.ledger.timeout_s / 4)
            space = self._space(now)
            got = 0
            if space > 0 and (space >= refill or not self._inflight):
                held = self.held_lanes()  # the budget holds these lanes on a metered link
                after = {**cursors, **{lane: 1 << 62 for lane in held}}
                records = await asyncio.to_thread(self.outbox.read, space, self.ledger, after, True)
                cursors.update({lane: last for lane, last in after.items() if lane not in held})
                got = self._publish(client, records)
            if got == 0 or len(self._inflight) >= self.max_inflight:
                resume_at = self._probe.resume_at
                timeout = min(next_status - now, 1.0, resume_at - now if resume_at > now else 1.0)
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, timeout))
                except TimeoutError:
                    pass
        self._flush_acks()

    def _space(self, now: float) -> int:
        """How many records to publish now: none while backing off after PUBACK 0x10, one while probing."""
        probe = self._probe.space(now, len(self._inflight))
        if probe is not None:
            return probe
        space = self.max_inflight - len(self._inflight)
        if self.receipts:
            space = min(space, self.max_unreceipted - len(self.ledger))
        return space

    def _publish(self, client: mqtt.Client, records: list[Record]) -> int:
        """Publish records the read already marked in flight in the outbox. A mark stays until the record
        is deleted (also if this publish fails): the quota never drops what may have been sent."""
        n = 0
        for rec in records:
            topic = topics.uplink(self.site, self.gateway, rec.stream)
            info = client.publish(topic, rec.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self._lost.set()
                break
            self.bytes_out += len(topic) + len(rec.payload)
            self.messages_out += 1
            self._inflight[info.mid] = rec.id
            self.ledger.sent(rec.id, rec.stream, rec.seq, rec.created)
            self._probe.published(info.mid)
            n += 1
        self.published += n
        return n

    async def _resend(self, client: mqtt.Client, due: list[int]) -> None:
        """Publish again what the broker acknowledged but the cloud did not receipt in time; not the records
        of lanes the budget holds on a metered link (they wait in the ledger until the lane opens)."""
        due = due[: max(0, self.max_inflight - len(self._inflight))]
        if not due:
            return
        records = await asyncio.to_thread(self.outbox.read_ids, due)
        for rid in set(due) - {r.id for r in records}:
            self.ledger.forget(rid)  # no longer stored
        held = self.held_lanes()
        records = [r for r in records if r.id in self.ledger  # a receipt may have come meanwhile
                   and r.lane not in held]
        if records:
            log.info("uplink_resending_unreceipted", records=len(records))
            self._publish(client, records)

    async def _goodbye(self, client: mqtt.Client) -> None:
        """Clean stop: wait briefly for PUBACKs, then a retained offline status."""
        deadline = time.monotonic() + 2.0
        while self._inflight and time.monotonic() < deadline and not self._lost.is_set():
            self._wake.clear()
            self._flush_acks()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=0.1)
            except TimeoutError:
                pass
        self._flush_acks()
        if not self._lost.is_set():
            await self._publish_status(client, online=False)
            deadline = time.monotonic() + 1.0
            while self._status_mids and time.monotonic() < deadline and not self._lost.is_set():
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=0.05)
                except TimeoutError:
                    pass

    def _release_all(self) -> None:
        """Link lost: what was not PUBACKed is republished next time; PUBACKed records await their receipt.
        The former stay in flight for the quota: the broker may have them (PUBACK lost), so dropping one
        could report a gap for a record that arrives. (A record published once stays in flight for the
        quota until it is deleted; at most a window's worth, ``max_unreceipted``.)"""
        self._flush_acks()
        self.ledger.unacked()
        self._inflight.clear()
        self._status_mids.clear()

    async def _publish_status(self, client: mqtt.Client, online: bool) -> None:
        age = await asyncio.to_thread(self.outbox.oldest_unsent_age)
        payload = self._status_payload(online, age)
        topic = topics.uplink(self.site, self.gateway, "status")
        info = client.publish(topic, payload, qos=1, retain=True)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self._status_mids.add(info.mid)
            self.bytes_out += len(topic) + len(payload)
            self.messages_out += 1

    def _status_payload(self, online: bool, age: float) -> bytes:
        v2 = self.outbox.wire_version >= 2
        st = messages.Status(v=self.outbox.wire_version, gw=self.gateway, seq=self.outbox.reserve_seq("status"),
                             t=time.time_ns(), online=online, backlog=self.outbox.backlog(),
                             oldest_unsent_s=round(age, 3), software=self.software, models=dict(self.models),
                             unreceipted=self.unreceipted if v2 else 0,
                             oldest_unreceipted_s=round(self.ledger.oldest_age(time.time()), 3)
                             if v2 and self.receipts else 0.0)
        return codec.encode(st)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short only by stop() or a lost connection."""
        self._halt.clear()
        if self._stopping:
            return
        try:
            await asyncio.wait_for(self._halt.wait(), timeout=seconds)
        except TimeoutError:
            pass
