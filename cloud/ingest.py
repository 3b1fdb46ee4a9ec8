"""Cloud ingest worker: MQTT 5 shared subscription -> strict decode -> batched InfluxDB writes.

N workers subscribe to ``$share/<group>/pg/v1/+/+/{stream}`` for each uplink
stream and the broker splits the uplink traffic between them. paho-mqtt 2 runs with ``manual_ack=True``: a
message's PUBACK goes out only after InfluxDB accepted its points (or, for a
bad message or a refused point, after it went to the dead-letter store). A
message whose batch has not been accepted when the connection drops is never
acknowledged; the broker redelivers it on the worker's persistent session
(fixed client id, clean start off) and the idempotent points make the second
write an overwrite.

Two tasks overlap work: the collector decodes and converts messages into the
next batch while the writer delivers the previous one (cloud/delivery.py has
the error policy). Acknowledgements go out in arrival order, batch by batch.
A batch is handed over when it reaches ``batch_points``, when ``flush_s``
passed, or (``eager``, the default) as soon as the writer is idle and no more
messages are waiting: a quiet stream is written at once, a busy one in full
batches.

Receipts (contract v2, cloud/receipts.py): once InfluxDB accepted a batch, its
v2 messages are marked written and a cumulative receipt goes to each
gateway's ``receipts`` topic (QoS 1, at most one per gateway per
``receipt_interval_s``); the gateway forgets a record only then. The worker
subscribes to the uplink streams one by one, so it never receives the
downlink (its own receipts, model offers). The MQTT side (client, callbacks,
acknowledgements) is cloud/ingest_mqtt.py; the writer cloud/ingest_writer.py.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import CollectorRegistry

from cloud.deadletter import DeadLetters
from cloud.delivery import Delivery
from cloud.influx import InfluxConfig, InfluxWriter, LineWriter
from cloud.ingest_admit import IngestConfig, Rejection, admit
from cloud.ingest_mqtt import IngestMqtt
from cloud.ingest_writer import write_batches
from cloud.receipts import Mark, ReceiptSender
from cloud.retention import ensure_schema
from runtime.configbase import read_optional_secret
from runtime.logs import get_logger
from runtime.supervisor import Tier

log = get_logger("cloud.ingest")

__all__ = ["IngestConfig", "IngestWorker"]


@dataclass
class _Batch:
    gen: int
    lines: list[str] = field(default_factory=list)
    mids: list[int] = field(default_factory=list)
    dead: list[tuple[str, str, bytes, str]] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)


class IngestWorker(IngestMqtt):
    """Shared subscription -> batches -> InfluxDB -> receipts and PUBACKs; the MQTT side is cloud/ingest_mqtt.py."""

    name = "ingest"
    tier = Tier.SINK

    def __init__(
        self,
        host: str,
        port: int,
        influx: LineWriter,
        client_id: str = "pg-ingest-1",
        group: str = "ingest",
        batch_points: int = 20000,
        flush_s: float = 1.0,
        deadletter_dir: Path | None = None,
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        receive_maximum: int = 20000,
        session_expiry_s: int = 24 * 3600,
        keepalive_s: int = 30,
        schema: InfluxConfig | None = None,
        registry: CollectorRegistry | None = None,
        reconnect_min_s: float = 0.1,
        reconnect_max_s: float = 0.25,
        eager: bool = True,
        end_session_on_stop: bool = False,
        receipts: bool = True,
        receipt_interval_s: float = 1.0,
        write_concurrency: int = 2,
    ) -> None:
        # reconnect fast (a worker sits next to its broker): after a broker restart mosquitto 2.0 has
        # forgotten the $share subscription, and messages published before we re-subscribe are dropped
        self.host, self.port = host, port
        self.influx = influx
        self.client_id, self.group = client_id, group
        self.batch_points, self.flush_s = batch_points, flush_s
        self.tls = (tls_ca_file, tls_cert_file, tls_key_file)
        self.username, self.password = username, password
        self.receive_maximum = receive_maximum
        self.session_expiry_s, self.keepalive_s = session_expiry_s, keepalive_s
        self.schema = schema
        self.reconnect_min_s, self.reconnect_max_s = reconnect_min_s, reconnect_max_s
        # eager: an idle writer takes the batch at once (low latency when quiet); under load batches fill up
        # to batch_points while the previous one is written; flush_s bounds the wait when eager is off
        self.eager = eager
        # False (default): a stopped worker keeps its session; the broker queues its share of the traffic
        # for it until it returns (restarts lose nothing). True: for a worker leaving for good; on a clean
        # stop it unsubscribes, drains what is already assigned to it, and ends its session.
        self.end_session_on_stop = end_session_on_stop
        self.deadletters = DeadLetters(deadletter_dir)
        self.receipts = ReceiptSender(receipt_interval_s, enabled=receipts)
        self.write_concurrency = max(1, write_concurrency)  # batches in flight to InfluxDB (cloud/ingest_writer.py)
        # fault injection (bench faults, tests): called after InfluxDB accepted a batch, before its
        # receipts and acknowledgements
        self.on_written: Callable[[int], None] | None = None
        self.delivery = Delivery(influx)
        self.connected = False
        self.received = 0
        self.acked = 0
        self.points = 0
        self.batches = 0
        self.connects = 0
        self._gen = 0
        self._client: mqtt.Client | None = None
        self._inbox: asyncio.Queue[tuple[int, int, str, bytes]] = asyncio.Queue()
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._arrived = asyncio.Event()
        self._writer_busy = False
        self._leftovers: set[asyncio.Task[None]] = set()
        self._last_arrival = 0.0
        self._unsubscribed = False
        self._retired = False
        self._suback: asyncio.Future[bool] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if registry is not None:
            from cloud.ingest_metrics import ingest_metrics
            from runtime.metrics import CallbackCollector

            collector = CallbackCollector()
            ingest_metrics(collector, self)
            registry.register(collector)

    @property
    def queued(self) -> int:
        """Messages received and waiting for a batch."""
        return self._inbox.qsize()

    @classmethod
    def from_config(cls, cfg: IngestConfig, influx: LineWriter, schema: InfluxConfig | None = None,
                    base: Path | None = None, registry: CollectorRegistry | None = None) -> IngestWorker:
        password = read_optional_secret(cfg.password_file, base)
        return cls(cfg.host, cfg.port, influx, cfg.client_id, cfg.group, cfg.batch_points, cfg.flush_s,
                   Path(cfg.deadletter_dir), cfg.tls_ca_file, cfg.tls_cert_file, cfg.tls_key_file, cfg.username,
                   password, cfg.receive_maximum, cfg.session_expiry_s, cfg.keepalive_s, schema, registry,
                   cfg.reconnect_min_s, cfg.reconnect_max_s, cfg.eager_flush, cfg.end_session_on_stop,
                   cfg.receipts, cfg.receipt_interval_s, cfg.write_concurrency)

    # ---- Component ---------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._retired = False
        self._stopping = asyncio.Event()
        self.delivery.stop = asyncio.Event()

    async def stop(self) -> None:
        self._stopping.set()
        self._arrived.set()

    async def run(self) -> None:
        if self.schema is not None:
            await self._ensure_schema()
        delay = self.reconnect_min_s
        while not self._stopping.is_set():
            began = time.monotonic()
            await self._session()
            if self._stopping.is_set():
                break
            if time.monotonic() - began > 10:
                delay = self.reconnect_min_s
            else:
                delay = min(delay * 2, self.reconnect_max_s)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            except TimeoutError:
                pass
        self.delivery.stop.set()  # stale batches of lost links: never acknowledged, the broker redelivers them
        for t in list(self._leftovers):
            t.cancel()
        await asyncio.gather(*self._leftovers, return_exceptions=True)
        await self.influx.close()

    async def _ensure_schema(self) -> None:
        assert self.schema is not None
        if not isinstance(self.influx, InfluxWriter) or self.influx.api != "v1":
            log.info("influx_schema_external", detail="v2: buckets and tasks come from examples/influxdb2/")
            return
        delay = 0.5
        while not self._stopping.is_set():
            try:
                await ensure_schema(self.influx, self.schema)
                return
            except Exception as exc:  # influx down at start: keep trying, nothing is consumed meanwhile
                log.warning("influx_schema_retry", error=str(exc)[:200])
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 30.0)

    # ---- one connection ----------------------------------------------------------------

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        self._gen += 1
        gen = self._gen
        client = self._make_client(gen)
        self._lost = asyncio.Event()
        self._suback = loop.create_future()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = min(65535, self.receive_maximum)
        try:
            await asyncio.to_thread(client.connect, self.host, self.port, self.keepalive_s, clean_start=False,
                                    properties=props)
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.warning("ingest_connect_failed", host=self.host, port=self.port, error=str(exc)[:200])
            return
        self._client = client
        client.loop_start()
        batches: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=1)
        rest = _Batch(gen)
        writer = asyncio.create_task(self._writer(batches), name=f"ingest[{self.client_id}].writer")
        try:
            try:
                ok = await asyncio.wait_for(self._suback, timeout=max(5.0, self.keepalive_s))
            except TimeoutError:
                ok = False
            if not ok:
                log.warning("ingest_subscribe_failed", group=self.group)
                return
            self.connected = True
            self.connects += 1
            log.info("ingest_connected", client_id=self.client_id, group=self.group)
            sender = asyncio.create_task(self.receipts.run(lambda t, p: self._publish(client, t, p), self._lost),
                                         name=f"ingest[{self.client_id}].receipts")
            try:
                rest = await self._collect(gen, batches)
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        finally:
            self.connected = False
            if self._stopping.is_set():
                if not self._lost.is_set():
                    try:  # clean stop: give the queued batches a moment to land
                        if rest.mids:
                            await asyncio.wait_for(batches.put(rest), timeout=5.0)
                        await asyncio.wait_for(batches.put(None), timeout=5.0)
                        await asyncio.wait_for(asyncio.shield(writer), timeout=5.0)
                    except TimeoutError:
                        pass
                self.delivery.stop.set()
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
            else:
                # link lost: the writer still writes what it has (never acknowledged: a stale generation),
                # in the background while we reconnect; if the broker crashed without saving, that data
                # would otherwise be gone. The broker redelivers the rest; rewrites are idempotent.
                leftover = asyncio.create_task(self._finish(batches, writer, rest))
                self._leftovers.add(leftover)
                leftover.add_done_callback(self._leftovers.discard)
            if self._retired:  # end the session: nothing of ours is left in it
                props_d = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
                props_d.SessionExpiryInterval = 0
                client.disconnect(properties=props_d)
                log.info("ingest_session_ended", client_id=self.client_id)
            else:
                client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            self._client = None

    async def _finish(self, batches: asyncio.Queue[_Batch | None], writer: asyncio.Task[None], rest: _Batch) -> None:
        try:
            if rest.mids:
                await batches.put(rest)
            await batches.put(None)
            await writer
        except asyncio.CancelledError:
            writer.cancel()
            raise

    async def _collect(self, gen: int, batches: asyncio.Queue[_Batch | None]) -> _Batch:
        """Build and hand over batches until the link drops or stop; returns the unfinished batch."""
        batch = _Batch(gen)
        deadline = time.monotonic() + self.flush_s
        inbox = self._inbox
        retire_at: float | None = None
        while not self._lost.is_set():
            if self._stopping.is_set():
                if not self.end_session_on_stop:
                    break
                now = time.monotonic()
                if retire_at is None:  # leave the group for good: unsubscribe, then drain what is ours
                    retire_at = now
                    self._unsubscribe()
                quiet = (self._unsubscribed and now - self._last_arrival > 0.3 and inbox.empty()
                         and not batch.mids and not self._writer_busy and batches.empty())
                if quiet or now - retire_at > 5.0:
                    self._retired = quiet
                    break
            while not inbox.empty() and len(batch.lines) < self.batch_points:
                self._take(batch, inbox.get_nowait())
            now = time.monotonic()
            idle = self.eager and not self._writer_busy and batches.empty() and inbox.empty()
            if len(batch.lines) >= self.batch_points or now >= deadline or (idle and batch.mids):
                if batch.mids:
                    if not await self._handover(batches, batch, by_stop=retire_at is None):
                        break  # link lost or stop while the writer was busy: `batch` is the rest
                    batch = _Batch(gen)
                deadline = time.monotonic() + self.flush_s
                continue
            if inbox.empty():
                await self._wait_inbox(deadline - now if retire_at is None else 0.05)
        while not inbox.empty():  # messages of this connection already received: write them too
            self._take(batch, inbox.get_nowait())
        return batch

    async def _handover(self, batches: asyncio.Queue[_Batch | None], batch: _Batch, by_stop: bool = True) -> bool:
        """Queue ``batch`` for the writer; False if the link dropped (or stop came, ``by_stop``) first."""
        if batches.empty():
            batches.put_nowait(batch)
            return True
        put = asyncio.ensure_future(batches.put(batch))
        lost = asyncio.ensure_future(self._lost.wait())
        stopping = asyncio.ensure_future(self._stopping.wait() if by_stop else asyncio.Event().wait())
        await asyncio.wait({put, lost, stopping}, return_when=asyncio.FIRST_COMPLETED)
        lost.cancel()
        stopping.cancel()
        if put.done():
            return True
        put.cancel()
        await asyncio.gather(put, return_exceptions=True)
        if put.cancelled():
            return False
        return True  # completed in the same instant

    async def _wait_inbox(self, wait_s: float) -> None:
        """Sleep until a message arrives, the connection drops, stop, or ``timeout``."""
        self._arrived.clear()
        if not self._inbox.empty():
            return
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout=max(0.0, wait_s))
        except TimeoutError:
            pass

    def _take(self, batch: _Batch, item: tuple[int, int, str, bytes]) -> None:
        gen, mid, topic, payload = item
        if gen != batch.gen:
            return  # from a dropped connection: the broker redelivers it
        self.received += 1
        batch.mids.append(mid)
        got = admit(topic, payload)
        if isinstance(got, Rejection):
            batch.dead.append((got.reason, topic, payload, got.detail))
            if got.mark is not None:
                batch.marks.append(got.mark)
            return
        batch.lines.extend(got.lines)
        if got.mark is not None:
            batch.marks.append(got.mark)
        self.points += len(got.lines)

    async def _writer(self, batches: asyncio.Queue[_Batch | None]) -> None:
        await write_batches(self, batches)
