"""Async serial link that survives a USB unplug/replug and notices a silent device.

Thin on purpose: bytes go straight from pyserial-asyncio-fast's ``data_received``
to the ``on_data(data, recv_mono, recv_wall)`` callback (receive times taken
right there, once). The link reports technical conditions through
``on_condition(condition, active, detail)``:

- ``connected`` (active) each time the port opens;
- ``disconnected``: the port vanished, read failed or could not be opened
  (USB unplugged, cable pulled); it then retries with exponential backoff
  (``backoff_initial_s`` doubling up to ``backoff_max_s``) and clears the
  condition when the port is back;
- ``silent``: no byte for ``silence_s`` while open; cleared by the next byte.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial
import serial_asyncio_fast

from runtime.logs import get_logger

log = get_logger("firmware_bridge.serial")

OnData = Callable[[bytes, float, float], None]
OnCondition = Callable[[str, bool, str], None]


@dataclass(frozen=True, slots=True)
class SerialSettings:
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1


class _Proto(asyncio.Protocol):
    def __init__(self, link: SerialLink) -> None:
        self.link = link
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.link._received(data, time.monotonic(), time.time())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class SerialLink:
    """Keep one serial port open and feed its bytes to ``on_data``; see the module doc."""

    def __init__(self, port: str, settings: SerialSettings, on_data: OnData, on_condition: OnCondition,
                 silence_s: float = 10.0, backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0,
                 name: str = "serial") -> None:
        self.port = port
        self.settings = settings
        self.on_data = on_data
        self.on_condition = on_condition
        self.silence_s = silence_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.name = name
        self.opens = 0
        self.bytes_in = 0
        self.last_rx = time.monotonic()
        self.disconnected = False
        self.silent = False
        self._transport: asyncio.Transport | None = None
        self._stop = asyncio.Event()
        self._on_open: list[Callable[[], None]] = []

    def add_open_callback(self, cb: Callable[[], None]) -> None:
        """Called each time the port (re)opens, before any byte: sessions restart here."""
        self._on_open.append(cb)

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def write(self, data: bytes) -> bool:
        """Queue bytes for the device; False when the port is not open."""
        t = self._transport
        if t is None or t.is_closing() or not data:
            return False
        t.write(data)
        return True

    def _received(self, data: bytes, mono: float, wall: float) -> None:
        self.last_rx = mono
        self.bytes_in += len(data)
        if self.silent:
            self.silent = False
            self.on_condition("silent", False, "")
        self.on_data(data, mono, wall)

    def _set_disconnected(self, active: bool, detail: str) -> None:
        if active == self.disconnected:
            return
        self.disconnected = active
        if active and self.silent:
            self.silent = False
            self.on_condition("silent", False, "superseded by disconnected")
        self.on_condition("disconnected", active, detail)

    async def _open(self) -> _Proto:
        s = self.settings
        loop = asyncio.get_running_loop()
        transport, proto = await serial_asyncio_fast.create_serial_connection(
            loop, lambda: _Proto(self), self.port, baudrate=s.baudrate, bytesize=s.bytesize,
            parity=s.parity, stopbits=s.stopbits, exclusive=True,
        )
        self._transport = transport
        assert isinstance(proto, _Proto)
        return proto

    async def run(self) -> None:
        """Open, read, reopen with backoff until :meth:`stop`."""
        self._stop.clear()
        backoff = self.backoff_initial_s
        while not self._stop.is_set():
            try:
                proto = await self._open()
            except (serial.SerialException, OSError, ValueError) as exc:
                self._set_disconnected(True, f"cannot open {self.port}: {type(exc).__name__}")
                log.warning("serial_open_failed", device=self.name, port=self.port, retry_in_s=backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            backoff = self.backoff_initial_s
            self.opens += 1
            self.last_rx = time.monotonic()
            log.info("serial_open", device=self.name, port=self.port, opens=self.opens)
            self._set_disconnected(False, "")
            self.on_condition("connected", True, self.port)
            for cb in self._on_open:
                cb()
            reason = await self._watch(proto)
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            if reason is not None:
                log.warning("serial_lost", device=self.name, port=self.port, reason=reason)
                self._set_disconnected(True, reason)
                await self._sleep(backoff)

    async def _watch(self, proto: _Proto) -> str | None:
        """Wait until the port is lost (returns why) or stop() (returns None); flags silence."""
        stop_wait: asyncio.Future[Any] = asyncio.ensure_future(self._stop.wait())
        lost: asyncio.Future[Any] = proto.lost
        try:
            while True:
                timeout = max(0.05, min(self.silence_s / 4, 1.0))
                done, _ = await asyncio.wait({lost, stop_wait}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if stop_wait in done:
                    return None
                if proto.lost in done:
                    exc = proto.lost.result()
                    return f"port lost: {type(exc).__name__}" if exc else "port closed"
                idle = time.monotonic() - self.last_rx
                if not self.silent and idle >= self.silence_s:
                    self.silent = True
                    self.on_condition("silent", True, f"no data for {idle:.1f} s")
        finally:
            stop_wait.cancel()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def stop(self) -> None:
        self._stop.set()
