"""The ingest worker's MQTT side: its paho client, the callbacks of paho's network thread, the acknowledgements.

paho-mqtt 2 runs with ``manual_ack=True``; every callback hands over to the
event loop with ``call_soon_threadsafe``. Received messages go to the
worker's inbox tagged with the connection's generation, so a batch never
acknowledges a message of an earlier connection (:meth:`IngestMqtt._ack`).
The worker subscribes to each uplink stream (``wire.topics.ingest_filters``),
never to the downlink (its own receipts, model offers, notice acks).
:class:`cloud.ingest.IngestWorker` is the rest.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from runtime.logs import get_logger
from wire import topics

if TYPE_CHECKING:
    from cloud.ingest import _Batch

log = get_logger("cloud.ingest")


class IngestMqtt:
    """Base of :class:`cloud.ingest.IngestWorker`: the state used here is set up by its ``__init__``."""

    client_id: str
    group: str
    tls: tuple[str | None, str | None, str | None]
    username: str | None
    password: str | None
    connected: bool
    acked: int
    _gen: int
    _client: mqtt.Client | None
    _inbox: asyncio.Queue[tuple[int, int, str, bytes]]
    _lost: asyncio.Event
    _arrived: asyncio.Event
    _last_arrival: float
    _unsubscribed: bool
    _suback: asyncio.Future[bool] | None
    _loop: asyncio.AbstractEventLoop | None

    def _deliver_msg(self, item: tuple[int, int, str, bytes]) -> None:
        self._inbox.put_nowait(item)
        self._last_arrival = time.monotonic()
        self._arrived.set()

    def _unsubscribe(self) -> None:
        self._unsubscribed = False
        if self._client is not None:
            self._client.unsubscribe(topics.ingest_filters(self.group))

    def _unsubscribed_cb(self) -> None:
        self._unsubscribed = True
        self._last_arrival = time.monotonic()

    def _ack(self, batch: _Batch) -> None:
        client = self._client
        if client is None or batch.gen != self._gen or self._lost.is_set():
            return
        for mid in batch.mids:
            if mid:  # 0: a QoS 0 message, nothing to acknowledge
                client.ack(mid, 1)
        self.acked += len(batch.mids)

    def _make_client(self, gen: int) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                             reconnect_on_failure=False, manual_ack=True)
        ca, cert, key = self.tls
        if ca or cert:
            client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        if self.username:
            client.username_pw_set(self.username, self.password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = lambda c, u, mid, rcs, p: self._call(self._unsubscribed_cb)
        client.on_disconnect = self._on_disconnect
        client.on_message = lambda c, u, m: self._call(
            self._deliver_msg, (gen, m.mid if m.qos else 0, m._topic.decode("utf-8", "replace"), m.payload))
        return client

    def _publish(self, client: mqtt.Client, topic: str, payload: bytes) -> bool:
        return client.publish(topic, payload, qos=1).rc == mqtt.MQTT_ERR_SUCCESS

    def _call(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if rc.is_failure:
            self._call(self._subscribed, False)
            return
        client.subscribe([(f, SubscribeOptions(qos=1)) for f in topics.ingest_filters(self.group)])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: list[ReasonCode], props: Any) -> None:
        self._call(self._subscribed, all(not rc.is_failure for rc in rcs))

    def _subscribed(self, ok: bool) -> None:
        if self._suback is not None and not self._suback.done():
            self._suback.set_result(ok)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self._call(self._disconnected, str(rc))

    def _disconnected(self, reason: str) -> None:
        if self.connected:
            log.warning("ingest_disconnected", reason=reason)
        self._lost.set()
        self._arrived.set()
        self._subscribed(False)
