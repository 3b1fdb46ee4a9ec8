"""Local alarm delivery on the gateway's own MQTT broker (nurse call, pagers), independent of the cloud.

:class:`LocalAlarmPublisher` is a supervisor component (tier SINK). The pipeline
hands it alarm updates through :meth:`offer`, which never blocks: the JSON view
is taken at once and put on a bounded queue; when the queue is full the
oldest queued update is dropped and counted (``dropped``), so the newest
state always gets through. Its own task drains the queue and publishes each
update with QoS 1 on ``pulsegate/local/{gateway}/alarms/{bed}``
(wire.topics.local_alarms); the publish completes on the broker's PUBACK, and
that instant is the "delivered locally" end of the alarm's latency trail.
While the broker is away the task reconnects with backoff and the queue
holds what arrives meanwhile (oldest first).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clinical.alarms.model import AlarmUpdate, Event
from runtime.logs import get_logger
from runtime.supervisor import Tier
from wire.topics import check_id, local_alarms

log = get_logger("edge.alarm_bus")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def topic_bed(bed: str) -> str:
    """A bed id as one topic level: MQTT wildcards and separators (+ # /) can never leak into the topic."""
    return _UNSAFE.sub("_", bed)[:64] or "_"


@dataclass(slots=True)
class Delivered:
    """What on_delivered receives: the update, its payload and the publish-complete time (monotonic)."""

    update: AlarmUpdate
    payload: dict[str, Any]
    delivered_mono: float


class LocalAlarmPublisher:
    tier = Tier.SINK

    def __init__(
        self,
        host: str,
        port: int,
        gateway: str,
        *,
        name: str = "local-alarms",
        queue_size: int = 1000,
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_delivered: Callable[[Delivered], None] | None = None,
        reconnect_max_s: float = 5.0,
        max_inflight: int = 64,
    ) -> None:
        self.name = name
        self.host, self.port = host, port
        self.gateway = check_id("gateway", gateway)
        self.qos = qos
        self.username, self.password = username, password
        self.clock = clock
        self.on_delivered = on_delivered
        self.reconnect_max_s = reconnect_max_s
        self.max_inflight = max_inflight
        self.queue: asyncio.Queue[tuple[AlarmUpdate, dict[str, Any]]] = asyncio.Queue(queue_size)
        self.offered = 0
        self.published = 0
        self.dropped = 0
        self.errors = 0
        self.connected = False
        self._stop = asyncio.Event()

    # -- hot path (sync, on the event loop) --------------------------------------------------------------
    def offer(self, u: AlarmUpdate) -> None:
        self.offered += 1
        payload = u.to_json()
        payload["gateway"] = self.gateway
        try:
            self.queue.put_nowait((u, payload))
        except asyncio.QueueFull:
            # the broker has been away long: keep the newest state (a new high alarm, a "cleared"), drop the oldest
            self.queue.get_nowait()
            self.queue.put_nowait((u, payload))
            self.dropped += 1

    # -- component ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._stop.clear()

    async def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        import aiomqtt

        backoff = 0.2
        pending: list[tuple[AlarmUpdate, dict[str, Any]]] = []
        while not self._stop.is_set():
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=f"pulsegate-{self.gateway}-local-alarms",
                                          username=self.username, password=self.password, keepalive=30,
                                          timeout=5.0) as client:
                    self.connected = True
                    backoff = 0.2
                    log.info("local_bus_connected", host=self.host, port=self.port)
                    while True:
                        if not pending:
                            first = await self._next(getattr(client, "_disconnected", None))
                            if first is None:
                                return  # stopped and drained
                            pending.append(first)
                        while len(pending) < self.max_inflight and not self.queue.empty():
                            pending.append(self.queue.get_nowait())
                        # a burst (many beds at one tick) goes out pipelined: each publish is written in order
                        # at once and completes on its own PUBACK, so one slow ack does not hold the others
                        await self._publish_all(client, pending)
            except aiomqtt.MqttError as exc:
                self.errors += 1
                self.connected = False
                log.warning("local_bus_error", error=str(exc), retry_in_s=backoff, queued=self.queue.qsize())
                try:
                    await asyncio.wait_for(self._stop.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, self.reconnect_max_s)
            finally:
                self.connected = False

    async def _publish_all(self, client: Any, batch: list[tuple[AlarmUpdate, dict[str, Any]]]) -> None:
        """Publish every item of ``batch`` and remove the acknowledged ones from it (also when the link breaks,
        so that only the unacknowledged are sent again). Raises MqttError if the link broke."""
        done: set[int] = set()

        import aiomqtt

        async def one(k: int, u: AlarmUpdate, payload: dict[str, Any]) -> None:
            try:
                await client.publish(local_alarms(self.gateway, topic_bed(u.alarm.bed)), json.dumps(payload),
                                     qos=self.qos)
            except aiomqtt.MqttError:
                raise  # the link broke: resend after reconnecting
            except Exception:  # this one update cannot be published (bad payload): count it, never stall the rest
                self.errors += 1
                done.add(k)
                log.error("local_alarm_publish_failed", exc=True, bed=u.alarm.bed)
                return
            done.add(k)
            self._delivered(u, payload)

        try:
            results = await asyncio.gather(*(one(k, u, p) for k, (u, p) in enumerate(batch)), return_exceptions=True)
        finally:
            batch[:] = [item for k, item in enumerate(batch) if k not in done]
        for r in results:
            if isinstance(r, BaseException) and batch:
                raise r

    async def _next(self, link: asyncio.Future[None] | None = None) -> tuple[AlarmUpdate, dict[str, Any]] | None:
        """The next queued update; None once stop() was called and the queue is empty. ``link`` (the
        client's disconnection future) ends an idle wait when the broker goes away, so ``connected`` (and
        the gateway's readiness) follows the broker even when no alarm is being sent."""
        import aiomqtt

        if not self.queue.empty():
            return self.queue.get_nowait()
        if self._stop.is_set():
            return None
        get = asyncio.ensure_future(self.queue.get())
        stop = asyncio.ensure_future(self._stop.wait())
        waits: set[asyncio.Future[Any]] = {get, stop} if link is None else {get, stop, link}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if get.done():
            return get.result()
        get.cancel()
        if link is not None and link.done() and not self._stop.is_set():
            raise aiomqtt.MqttError("local bus disconnected while idle")
        return self.queue.get_nowait() if not self.queue.empty() else None

    def _delivered(self, u: AlarmUpdate, payload: dict[str, Any]) -> None:
        now = self.clock()
        self.published += 1
        if u.event is Event.RAISED and u.alarm.delivered_mono is None:
            u.alarm.delivered_mono = now
        if self.on_delivered is not None:
            try:
                self.on_delivered(Delivered(u, payload, now))
            except Exception:
                log.error("on_delivered_failed", exc=True)
