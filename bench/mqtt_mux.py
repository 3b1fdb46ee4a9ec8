"""Many paho-mqtt clients on one asyncio loop (no network thread per client).

paho's socket callbacks hand each client's socket to the event loop
(``add_reader``/``add_writer`` -> ``loop_read``/``loop_write``), after paho's
own ``examples/loop_asyncio.py``; one task calls ``loop_misc`` (keepalive,
retries) of every client once a second. ``bench/fleet_gateways.py`` runs a few
hundred emulated gateways per process this way.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import paho.mqtt.client as mqtt


class MqttMux:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.clients: list[mqtt.Client] = []
        self._misc: asyncio.Task[None] | None = None

    def attach(self, client: mqtt.Client) -> None:
        client.on_socket_open = self._open
        client.on_socket_close = self._close
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._done_write
        self.clients.append(client)
        if self._misc is None:
            self._misc = self.loop.create_task(self._misc_loop())

    def _open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.add_reader(sock, client.loop_read)
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)

    def _close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.remove_reader(sock)
        self.loop.remove_writer(sock)

    def _want_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.add_writer(sock, client.loop_write)

    def _done_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.remove_writer(sock)

    async def _misc_loop(self) -> None:
        while True:
            for c in self.clients:
                c.loop_misc()
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._misc is not None:
            self._misc.cancel()
            await asyncio.gather(self._misc, return_exceptions=True)
