"""The uplink's paho side: the MQTT client and the callbacks of paho's network thread (PUBACKs, receipts).

Every callback hands over to the event loop with ``call_soon_threadsafe``;
the loop side (:meth:`UplinkCallbacks._puback_cb`, :meth:`UplinkCallbacks._receipt_cb`)
decides what a PUBACK or a receipt means for a record: contract v2 deletes
a record on its receipt (edge/receipt_ledger.py), contract v1 at its PUBACK;
PUBACK 0x10 "no matching subscribers" keeps it and starts the probe
(edge/uplink_probe.py). :class:`edge.uplink.Uplink` is the rest.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge.outbox import Outbox
from edge.receipt_ledger import Ledger
from edge.uplink_probe import Probe
from runtime.logs import get_logger
from wire import codec, topics

log = get_logger("edge.uplink")

NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5 PUBACK reason: accepted, but nobody will get it


class UplinkCallbacks:
    """Base of :class:`edge.uplink.Uplink`: the state the callbacks touch is set up by its ``__init__``."""

    outbox: Outbox
    site: str
    gateway: str
    client_id: str
    tls: tuple[str | None, str | None, str | None]
    username: str | None
    password: str | None
    max_inflight: int
    receipts: bool
    ledger: Ledger
    connected: bool
    acked: int
    refused: int
    disconnects: int
    no_subscribers: int
    receipts_received: int
    receipt_errors: int
    _probe: Probe
    _rescan: bool
    _wake: asyncio.Event
    _halt: asyncio.Event
    _lost: asyncio.Event
    _inflight: dict[int, int]  # mid -> outbox record id
    _status_mids: set[int]
    _acked_ids: list[int]
    _connack: asyncio.Future[tuple[bool, int]] | None
    _loop: asyncio.AbstractEventLoop | None

    def _status_payload(self, online: bool, age: float) -> bytes:
        raise NotImplementedError

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                             reconnect_on_failure=False)
        client.max_inflight_messages_set(self.max_inflight + 16)
        client.max_queued_messages_set(0)
        ca, cert, key = self.tls
        if ca or cert:
            client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        if self.username:
            client.username_pw_set(self.username, self.password)
        will = self._status_payload(False, 0.0)
        client.will_set(topics.uplink(self.site, self.gateway, "status"), will, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = lambda c, u, m: self._call(self._receipt_cb, m.payload)
        return client

    def _call(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _commit_hook(self) -> None:
        self._call(self._wake.set)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self._call(self._connected_cb, not rc.is_failure, rc.value)

    def _connected_cb(self, ok: bool, rc: int) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result((ok, rc))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self._call(self._disconnected_cb, str(rc))

    def _disconnected_cb(self, reason: str) -> None:
        self.disconnects += 1
        if self.connected:
            log.warning("uplink_disconnected", reason=reason, inflight=len(self._inflight))
        self._lost.set()
        self._wake.set()
        self._halt.set()
        self._connected_cb(False, -1)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        self._call(self._puback_cb, mid, rc.is_failure, rc.value)

    def _puback_cb(self, mid: int, failed: bool, rc: int) -> None:
        if mid in self._status_mids:
            self._status_mids.discard(mid)
            if failed:
                self.refused += 1
                log.warning("uplink_status_refused", reason=rc)
            self._wake.set()
            return
        rid = self._inflight.pop(mid, None)
        if rid is None:
            return
        if failed or rc == NO_MATCHING_SUBSCRIBERS:
            # refused (e.g. not authorised): keep the record; it is retried on the next connection.
            # no subscribers: keep it and probe with one record until the ingest is subscribed again.
            # Either way it stays in flight for the quota: an earlier copy may have arrived (a re-send).
            self.ledger.forget(rid)
            if failed:
                self.refused += 1
                log.warning("uplink_publish_refused", reason=rc)
            else:
                self.no_subscribers += 1
                self._rescan = True
                if self._probe.no_subscribers(mid, time.monotonic()):
                    log.warning("uplink_no_subscribers", hint="the ingest is not subscribed (broker restarted?)")
        else:
            self.acked += 1
            if self._probe.accepted():
                log.info("uplink_subscribers_back")
            if not self.receipts:  # contract v1: the PUBACK is the end of the record
                self.ledger.forget(rid)
                self._acked_ids.append(rid)
                if len(self._acked_ids) >= 256:
                    self._flush_acks()
            else:
                self.ledger.acked(rid, time.monotonic())
        self._wake.set()

    def _receipt_cb(self, payload: bytes) -> None:
        try:
            rct = codec.decode_receipt(bytes(payload))
        except codec.WireError as exc:
            self.receipt_errors += 1
            log.warning("uplink_bad_receipt", reason=exc.reason)
            return
        if rct.gw != self.gateway or not self.receipts:
            self.receipt_errors += 1
            return
        self.receipts_received += 1
        done = self.ledger.apply(rct)
        if done:
            self.outbox.delete(done)
            self.outbox.release(done)
            self._wake.set()

    def _flush_acks(self) -> None:
        if self._acked_ids:
            ids, self._acked_ids = self._acked_ids, []
            self.outbox.delete(ids)
            self.outbox.release(ids)
