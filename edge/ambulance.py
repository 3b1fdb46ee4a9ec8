"""``[gateway] kind = "ambulance"``: GPS, the cellular budget's governor, pre-arrival notices, ED acks.

:class:`AmbulanceService` (tier PIPELINE, not essential) ticks once a second:
the notice sender (updates as the patient changes), the budget governor
(summary interval and raw throttling follow its level), and a coarse
:class:`wire.messages.Where` on the status stream every ``position_interval_s``
x the budget's summary factor. Two subscriptions run beside it:

- the ED's acknowledgements (``pg/v1/{site}/{gw}/down/notice_acks``, retained) on the
  broker of the link that is active now (it follows handovers);
- the vehicle's ePCR on the local broker: JSON ``{"hospital", "complaint", "bed"}``
  or ``{"state": "arrived"|"cancelled"}`` on ``pulsegate/local/{gw}/epcr/notice``;
  the notice's state (incl. the acknowledgement) is published, retained, on
  ``pulsegate/local/{gw}/epcr/notice_state``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

from pydantic import Field

from edge.budget import Budget
from edge.links import LinkSet
from edge.notices import NoticeError, NoticeSender
from edge.position import PositionTracker
from edge.summaries import Summarizer
from firmware_bridge.gps_source import GpsConfig
from runtime.configbase import Section
from runtime.logs import get_logger
from runtime.supervisor import Tier
from runtime.tasks import cancel_and_wait
from wire import codec, topics
from wire.messages import VERSION, Message, NoticeAck, Where

log = get_logger("edge.ambulance")


class HospitalConfig(Section):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class AmbulanceSection(Section):
    """``[ambulance]``: receiving hospitals (``[[ambulance.hospitals]]``), the GPS, ETA and notice timing."""

    hospitals: list[HospitalConfig] = Field(default_factory=list)
    gps: GpsConfig | None = None
    route_factor: Annotated[float, Field(ge=1.0, le=3.0)] = 1.3
    min_speed_kmh: Annotated[float, Field(gt=0, le=200)] = 20.0
    notice_min_gap_s: Annotated[float, Field(ge=0.5, le=600)] = 2.0
    notice_refresh_s: Annotated[float, Field(ge=5, le=3600)] = 300.0
    position_interval_s: Annotated[float, Field(ge=5, le=3600)] = 60.0
    epcr: bool = True  # listen for the ePCR on the local broker


class AmbulanceService:
    name = "ambulance"
    tier = Tier.PIPELINE
    essential = False

    def __init__(self, cfg: AmbulanceSection, gateway: str, site: str, publish: Any, snapshot: Any,
                 patient_of: Any, summarizer: Summarizer, links: LinkSet | None, budget: Budget | None,
                 local_bus: tuple[str, int, str | None, str | None] | None = None) -> None:
        self.cfg = cfg
        self.gateway = gateway
        self.site = site
        self.publish_fn = publish
        self.tracker = PositionTracker(cfg.route_factor, cfg.min_speed_kmh)
        self.sender = NoticeSender(gateway, publish, snapshot, patient_of, self.tracker,
                                   {h.id: (h.lat, h.lon) for h in cfg.hospitals}, min_gap_s=cfg.notice_min_gap_s,
                                   refresh_s=cfg.notice_refresh_s)
        self.summarizer = summarizer
        self.base_interval = summarizer.interval_s
        self.links = links
        self.budget = budget
        self.local_bus = local_bus
        self._stop = asyncio.Event()
        self._state_changed = asyncio.Event()
        self.sender.on_change = self._state_changed.set
        self._next_where = 0.0
        self.acks_received = 0
        self.epcr_requests = 0
        self.epcr_rejected = 0

    def publish(self, stream: str, msg: Message) -> None:
        self.publish_fn(stream, msg)

    async def start(self) -> None:
        self._stop = asyncio.Event()
        self._state_changed = asyncio.Event()
        self.sender.on_change = self._state_changed.set

    async def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._ticker(), name="ambulance-tick")]
        if self.links is not None:
            tasks.append(asyncio.create_task(self._acks(), name="ambulance-acks"))
        if self.local_bus is not None and self.cfg.epcr:
            tasks.append(asyncio.create_task(self._epcr(), name="ambulance-epcr"))
        try:
            await self._stop.wait()
        finally:
            await cancel_and_wait(tasks)

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.sender.tick()
        b = self.budget
        if b is not None:
            b.update()
            self.summarizer.set_interval(b.summary_interval(self.base_interval))
            self.summarizer.raw_every = b.raw_every()
        factor = self.summarizer.interval_s / self.base_interval
        if now >= self._next_where:
            pos = self.tracker.position()
            if pos is not None:
                self.publish("status", Where(v=VERSION, gw=self.gateway, seq=0, t=int(now * 1e9), position=pos))
            self._next_where = now + self.cfg.position_interval_s * factor

    async def _ticker(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.error("ambulance_tick_failed", exc=True)
            await asyncio.sleep(1.0)

    def status(self) -> dict[str, Any]:
        pos = self.tracker.position()
        out: dict[str, Any] = {
            "position": None if pos is None else {"lat": pos.lat, "lon": pos.lon, "speed_kmh": pos.speed_kmh,
                                                   "fix": pos.fix, "precision": "0.001 deg (~100 m)"},
            "notice": self.sender.state()["notice"],
            "summary_interval_s": self.summarizer.interval_s,
        }
        if self.budget is not None:
            out["budget"] = self.budget.status()
        if self.links is not None:
            out["links"] = self.links.status()
        return out

    # ---- the ED's acknowledgements (cloud broker of the active link) ------------------------------------
    def handle_ack(self, payload: bytes) -> None:
        try:
            msg = codec.decode(payload)
        except codec.WireError:
            self.sender.rejected_acks += 1
            return
        if isinstance(msg, NoticeAck):
            self.acks_received += 1
            self.sender.on_ack(msg)

    async def _acks(self) -> None:
        assert self.links is not None
        links = self.links
        topic = topics.notice_acks(self.site, self.gateway)
        while True:
            idx, up = links.active, links.current
            await self._subscription(up.host, up.port, f"pg-{self.gateway}-acks", topic, self.handle_ack,
                                     stay=lambda i=idx: links.active == i,  # type: ignore[misc]
                                     username=up.username, password=up.password, tls=up.tls)

    async def _subscription(self, host: str, port: int, ident: str, topic: str, handle: Any, stay: Any = None,
                            idle: Any = None, username: str | None = None, password: str | None = None,
                            tls: tuple[str | None, str | None, str | None] = (None, None, None)) -> None:
        """One connection: subscribe to ``topic``, hand each payload to ``handle`` until the connection drops or
        ``stay()`` turns false; ``idle(client)`` runs twice a second meanwhile. Waits 1 s after a failure."""
        import aiomqtt

        ca, cert, key = tls
        params = aiomqtt.TLSParameters(ca_certs=ca, certfile=cert, keyfile=key) if ca or cert else None
        try:
            async with aiomqtt.Client(host, port, identifier=ident, username=username, password=password,
                                      tls_params=params, timeout=10) as client:
                await client.subscribe(topic, qos=1)
                receive = asyncio.ensure_future(self._pump(client, handle))
                try:
                    while (stay is None or stay()) and not receive.done():
                        if idle is not None:
                            await idle(client)
                        await asyncio.wait({receive}, timeout=0.5)
                finally:
                    await cancel_and_wait([receive])
        except aiomqtt.MqttError:
            await asyncio.sleep(1.0)

    @staticmethod
    async def _pump(client: Any, handle: Any) -> None:
        async for message in client.messages:
            if isinstance(message.payload, bytes | bytearray) and message.payload:
                handle(bytes(message.payload))

    # ---- the vehicle's ePCR (local broker) -------------------------------------------------------------
    def handle_epcr(self, payload: bytes) -> None:
        try:
            req = json.loads(payload[:4096])
            if not isinstance(req, dict):
                raise ValueError("not an object")
            if "state" in req:
                self.sender.finish(str(req["state"]))
            else:
                self.sender.request(str(req.get("hospital", "")), str(req.get("complaint", "")),
                                    str(req.get("bed", "")))
            self.epcr_requests += 1
        except (ValueError, NoticeError) as exc:
            self.epcr_rejected += 1
            log.warning("epcr_request_rejected", reason=str(exc)[:120])

    async def _epcr(self) -> None:
        assert self.local_bus is not None
        host, port, username, password = self.local_bus
        state_topic = topics.local_epcr(self.gateway, "notice_state")

        async def publish_state(client: Any) -> None:
            if self._state_changed.is_set():
                self._state_changed.clear()
                await client.publish(state_topic, json.dumps(self.sender.state()), qos=1, retain=True)

        while True:
            self._state_changed.set()  # the state once per connection, then on every change
            await self._subscription(host, port, f"pg-{self.gateway}-epcr", topics.local_epcr(self.gateway, "notice"),
                                     self.handle_epcr, idle=publish_state, username=username, password=password)
