"""Link handover: several uplinks in priority order over ONE outbox (base Wi-Fi first, cellular on the road).

``[[uplink.links]]`` (:class:`LinkConfig`) names each broker endpoint; fields
left out are taken from ``[uplink]``. :class:`LinkSet` runs one
:class:`~edge.uplink.Uplink` at a time, through its public start/run/stop, so
everything the uplink guarantees (records deleted only once acknowledged,
lanes, status, last will) holds on every link:

- it starts on the first link; when the active link has been down for
  ``failover_s`` it moves to the next one (round robin when all are down);
- while on a lower-priority link it probes the better ones every
  ``probe_interval_s`` (a TCP connect) and moves back up as soon as one answers;
- a move stops the old uplink (it waits up to 2 s for PUBACKs of what is in
  flight, then publishes its offline status there) and starts the new one,
  which publishes whatever is still in the outbox. Nothing is lost: a record
  leaves the outbox only once the cloud receipted it (contract v2; at the
  broker's PUBACK for v1). What a link published and still waited to hear
  about is published again on the next link (``Uplink.hand_over``): its
  receipt would come through the old broker's session. Nothing is doubled in
  the cloud: a record sent on both links keeps its id (gateway, stream, seq),
  and the cloud's points for one id overwrite each other.

The active link's bytes are charged to the :class:`~edge.budget.Budget`
(metered links only), which also holds lanes on metered links.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from pathlib import Path
from typing import Annotated

from pydantic import Field

from edge.budget import MQTT_FRAMING, Budget
from edge.outbox import Outbox
from edge.uplink import Uplink, UplinkConfig
from runtime.configbase import Section
from runtime.logs import get_logger
from runtime.supervisor import Tier

log = get_logger("edge.links")


class LinkConfig(Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 8883
    metered: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    username: str | None = None
    password_file: str | None = None


class LinkSet:
    name = "uplink"
    tier = Tier.SINK
    essential = False

    def __init__(self, outbox: Outbox, links: list[tuple[str, bool, Uplink]], budget: Budget | None = None,
                 failover_s: float = 5.0, probe_interval_s: float = 10.0) -> None:
        if not links:
            raise ValueError("a link set needs at least one link")
        self.outbox = outbox
        self.links = links
        self.budget = budget
        self.failover_s = failover_s
        self.probe_interval_s = probe_interval_s
        self.active = 0
        self.handovers = 0
        self._stopping = False
        self._stop = asyncio.Event()
        self._counted: dict[int, tuple[int, int]] = {}
        if budget is not None:
            for _, metered, up in links:
                up.held_lanes = functools.partial(budget.held_lanes, metered)

    @classmethod
    def from_config(cls, cfg: UplinkConfig, links: list[LinkConfig], outbox: Outbox, gateway: str,
                    base: Path | None, software: str, site: str | None, budget: Budget | None) -> LinkSet:
        ups: list[tuple[str, bool, Uplink]] = []
        for lk in links:
            merged = cfg.model_copy(update={k: v for k, v in lk.model_dump().items()
                                            if k not in ("name", "metered") and v is not None})
            up = Uplink.from_config(merged, outbox, gateway, base, software=software, site=site)
            if lk.metered and budget is not None:
                up.status_interval_s = max(up.status_interval_s, budget.cfg.metered_status_interval_s)
            ups.append((lk.name, lk.metered, up))
        return cls(outbox, ups, budget)

    # ---- the Uplink surface the daemon, the metrics and the pages read ---------------------------------
    @property
    def current(self) -> Uplink:
        return self.links[self.active][2]

    @property
    def active_name(self) -> str:
        return self.links[self.active][0]

    @property
    def metered(self) -> bool:
        return self.links[self.active][1]

    @property
    def connected(self) -> bool:
        return self.current.connected

    @property
    def models(self) -> dict[str, str]:
        return self.current.models

    @models.setter
    def models(self, value: dict[str, str]) -> None:
        for _, _, up in self.links:
            up.models = value

    def _sum(self, attr: str) -> int:
        return sum(int(getattr(up, attr)) for _, _, up in self.links)

    @property
    def published(self) -> int:
        return self._sum("published")

    @property
    def acked(self) -> int:
        return self._sum("acked")

    @property
    def refused(self) -> int:
        return self._sum("refused")

    @property
    def connects(self) -> int:
        return self._sum("connects")

    @property
    def connect_failures(self) -> int:
        return self._sum("connect_failures")

    @property
    def inflight(self) -> int:
        return self.current.inflight

    def status(self) -> dict[str, object]:
        return {"active": self.active_name, "connected": self.connected, "metered": self.metered,
                "handovers": self.handovers,
                "links": [{"name": n, "metered": m, "connected": up.connected, "bytes_out": up.bytes_out}
                          for n, m, up in self.links]}

    # ---- Component ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._stop = asyncio.Event()
        self._stopping = False

    async def stop(self) -> None:
        self._stopping = True
        self._stop.set()

    async def run(self) -> None:
        idx = 0
        while not self._stopping:
            self.active = idx
            name, metered, up = self.links[idx]
            up.hand_over()  # what it sent before a move waits for receipts on another broker: send it again
            await up.start()
            task = asyncio.create_task(up.run(), name=f"uplink[{name}]")
            log.info("link_active", link=name, metered=metered)
            nxt = await self._watch(idx, up, task)
            final = self._stopping
            if not final:
                up.drain_timeout_s, keep = 0.0, up.drain_timeout_s
            await up.stop()
            try:
                await asyncio.wait_for(task, timeout=10.0)
            except TimeoutError:
                task.cancel()
            self._charge(idx, up, metered)
            if not final:
                up.drain_timeout_s = keep
                self.handovers += 1
                log.info("link_handover", frm=name, to=self.links[nxt][0])
            idx = nxt

    def _charge(self, idx: int, up: Uplink, metered: bool) -> None:
        b0, m0 = self._counted.get(idx, (0, 0))
        b1, m1 = up.bytes_out, up.messages_out
        self._counted[idx] = (b1, m1)
        if self.budget is not None and (b1 > b0 or m1 > m0):
            overhead = MQTT_FRAMING + self.budget.cfg.overhead_bytes
            self.budget.charge((b1 - b0) + (m1 - m0) * overhead, metered)

    async def _watch(self, idx: int, up: Uplink, task: asyncio.Task[None]) -> int:
        """Run ``up`` until it should be replaced; returns the index of the next link."""
        last_up = time.monotonic()
        next_probe = time.monotonic() + self.probe_interval_s
        n = len(self.links)
        while not self._stopping:
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=0.25)
            except TimeoutError:
                pass
            self._charge(idx, up, self.links[idx][1])
            now = time.monotonic()
            if up.connected:
                last_up = now
            elif n > 1 and now - last_up >= self.failover_s:
                return (idx + 1) % n
            if task.done():
                return idx
            if idx > 0 and now >= next_probe:
                next_probe = now + self.probe_interval_s
                better = await asyncio.to_thread(self._probe, idx)
                if better is not None:
                    return better
        return idx

    def _probe(self, below: int) -> int | None:
        """The best link above ``below`` that accepts a TCP connection, if any (blocking: in a thread)."""
        for i in range(below):
            up = self.links[i][2]
            try:
                with socket.create_connection((up.host, up.port), timeout=2.0):
                    return i
            except OSError:
                continue
        return None
