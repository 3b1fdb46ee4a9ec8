"""MLLP listener (tier SOURCE): central stations and Mindray-style monitors push ORU^R01 to the gateway.

One :class:`~firmware_bridge.hl7_mllp.MllpDecoder` per TCP connection; every
message is acknowledged on the same connection (AA, or AE with the reason).
Technical conditions: ``connected`` (active while at least one sender is
connected; detail = peer count) and ``silent`` when no message arrived for
``silence_timeout_s``. A sender closing its connection is not an alarm by itself
(many central stations connect per batch); silence is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from clinical.sample import DeviceEvent, Sample
from firmware_bridge.config import Hl7MllpConfig
from firmware_bridge.hl7_mllp import MllpDecoder
from runtime.logs import get_logger
from runtime.supervisor import Tier

log = get_logger("firmware_bridge.mllp")


class _Conn(asyncio.Protocol):
    def __init__(self, src: MllpSource) -> None:
        self.src = src
        self.decoder = MllpDecoder(src.cfg.bed, src.cfg.id, dict(src.cfg.bed_map), src.cfg.max_message_bytes)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.src._conns.add(self)
        self.src._peer(+1)

    def data_received(self, data: bytes) -> None:
        mono, wall = time.monotonic(), time.time()
        try:
            items = self.decoder.feed(data, mono, wall)
        except Exception:
            self.src.codec_errors += 1
            log.error("codec_error", exc=True, device=self.src.cfg.id)
            if self.transport is not None:
                self.transport.close()
            return
        if items:
            self.src._deliver(items, mono)
        ack = self.decoder.data_to_send()
        if ack and self.transport is not None:
            self.transport.write(ack)

    def connection_lost(self, exc: Exception | None) -> None:
        self.src._conns.discard(self)
        self.src._add_stats(self.decoder)
        self.src._peer(-1)


class MllpSource:
    """Listen on host:port for MLLP; emits Samples and DeviceEvents. ``port`` 0 picks a free port."""

    tier = Tier.SOURCE
    essential = False  # see runtime/supervisor.py

    def __init__(self, cfg: Hl7MllpConfig, emit: Callable[[Sample], None],
                 emit_event: Callable[[DeviceEvent], None]) -> None:
        self.cfg = cfg
        self.name = f"device[{cfg.id}]"
        self.emit = emit
        self.emit_event = emit_event
        self.port = cfg.port
        self.messages = 0
        self.bad_messages = 0
        self.codec_errors = 0
        self.peers = 0
        self._server: asyncio.Server | None = None
        self._stop = asyncio.Event()
        self._last_rx = time.monotonic()
        self._silent = False
        self._conns: set[_Conn] = set()

    def _event(self, condition: str, active: bool, detail: str = "") -> None:
        self.emit_event(DeviceEvent(self.cfg.bed, self.cfg.id, condition, active, time.monotonic(), time.time(),
                                    "", detail))

    def _peer(self, delta: int) -> None:
        before = self.peers
        self.peers += delta
        if before == 0 and self.peers == 1:
            self._event("connected", True, "1 sender")
        elif before == 1 and self.peers == 0:
            self._event("connected", False, "no sender")

    def _deliver(self, items: list[Sample | DeviceEvent], mono: float) -> None:
        self._last_rx = mono
        if self._silent:
            self._silent = False
            self._event("silent", False)
        for item in items:
            if isinstance(item, Sample):
                self.emit(item)
            else:
                self.emit_event(item)

    def _add_stats(self, d: MllpDecoder) -> None:
        self.messages += d.stats.frames
        self.bad_messages += d.stats.bad_frames

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), self.cfg.host, self.cfg.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        self._last_rx = time.monotonic()
        log.info("mllp_listening", device=self.cfg.id, host=self.cfg.host, port=self.port)

    async def run(self) -> None:
        self._stop.clear()
        step = min(1.0, self.cfg.silence_timeout_s / 4)
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=step)
            except TimeoutError:
                pass
            idle = time.monotonic() - self._last_rx
            if not self._silent and idle >= self.cfg.silence_timeout_s:
                self._silent = True
                self._event("silent", True, f"no HL7 message for {idle:.0f} s")
        if self._server is not None:
            self._server.close()
            for conn in list(self._conns):
                if conn.transport is not None:
                    conn.transport.close()
            await self._server.wait_closed()
            self._server = None

    async def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()  # stop accepting; run() waits for it
