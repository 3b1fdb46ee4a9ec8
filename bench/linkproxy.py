"""A TCP proxy standing for a radio link between a gateway and its broker: cut it, restore it, count bytes.

``LinkProxy(target_port).start()`` listens on a free loopback port and forwards
every connection to ``127.0.0.1:target_port``. ``down()`` closes every open
connection and refuses new ones (a tunnel, a dead zone); ``up()`` accepts
again. ``bytes_up`` / ``bytes_down`` count the TCP payload in each direction
(MQTT framing, pings and all; IP and TCP headers are not counted).
"""

from __future__ import annotations

import asyncio
import contextlib

from bench.localservices import free_port


class LinkProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.is_up = True
        self.bytes_up = 0
        self.bytes_down = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> LinkProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        self.down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def down(self) -> None:
        self.is_up = False
        for w in list(self._open):
            w.transport.abort()
        self._open.clear()

    def up(self) -> None:
        self.is_up = True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_up:
            writer.transport.abort()
            return
        try:
            r2, w2 = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._open.update((writer, w2))
        await asyncio.gather(self._pipe(reader, w2, True), self._pipe(r2, writer, False))
        for w in (writer, w2):
            self._open.discard(w)
            w.transport.abort()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, up: bool) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            while self.is_up:
                data = await r.read(65536)
                if not data or not self.is_up:
                    break
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                w.write(data)
                await w.drain()
        w.transport.abort()


class ThreadedLinkProxy:
    """A :class:`LinkProxy` on its own event loop thread, for synchronous callers (``pulsegate demo``)."""

    def __init__(self, target_port: int) -> None:
        import threading

        self._loop = asyncio.new_event_loop()
        self.proxy = LinkProxy(target_port)
        self._thread = threading.Thread(target=self._loop.run_forever, name="link-proxy", daemon=True)

    @property
    def port(self) -> int:
        return self.proxy.port

    def start(self) -> ThreadedLinkProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(10)
        return self

    def set_up(self, up: bool) -> None:
        self._loop.call_soon_threadsafe(self.proxy.up if up else self.proxy.down)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
