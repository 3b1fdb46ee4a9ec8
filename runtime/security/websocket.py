"""WebSocket admission: same Origin only, a frame size limit, a cap per client address.

Browsers send cookies with a WebSocket handshake from any page (there is no
CORS for WebSockets), so a page on another site could otherwise open the
nurse page's socket with the nurse's session and read the ward. The handshake
must carry this listener's own Origin. The guard's middleware has already
authenticated the request (the route's rule) before ``accept`` runs.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator

from aiohttp import web

from .audit import Audit
from .origins import HostPolicy


class WsGate:
    def __init__(self, hosts: HostPolicy, audit: Audit, *, per_client: int = 8, max_frame_bytes: int = 4096
                 ) -> None:
        self.hosts = hosts
        self.audit = audit
        self.per_client = per_client
        self.max_frame_bytes = max_frame_bytes
        self.open: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def accept(self, request: web.Request, heartbeat: float = 20.0) -> AsyncIterator[web.WebSocketResponse]:
        client = request.remote or "unknown"
        if not self.hosts.origin_ok(request, required=True):
            self.refused["origin"] += 1
            self.audit.record("websocket", "denied", "-", client, reason="origin", path=request.path)
            raise web.HTTPForbidden(text="WebSocket from another origin refused")
        if self.open[client] >= self.per_client:
            self.refused["per_client"] += 1
            raise web.HTTPTooManyRequests(text="too many WebSockets from this address")
        ws = web.WebSocketResponse(heartbeat=heartbeat, max_msg_size=self.max_frame_bytes)
        self.open[client] += 1
        try:
            await ws.prepare(request)
            yield ws
        finally:
            self.open[client] -= 1
            if self.open[client] <= 0:
                del self.open[client]
