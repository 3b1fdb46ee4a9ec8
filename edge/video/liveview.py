"""The gateway's live view: the annotated video as MJPEG over HTTP.

A clinician opens ``https://<gateway>:<port>/`` in a browser on the hospital
network and logs in (role clinician or admin; ``security`` is the listener's
guard, TLS and limits, see runtime/security). The page (its script and style
from /live/static, nothing from outside, no inline script) shows the stream
``/stream.mjpg`` with the overlay and polls ``/status`` for fps, latency and
the finding state. ``/frame.jpg`` returns one JPEG. Frames are
JPEG-encoded only while someone watches, in a worker thread, at most
``max_fps`` per second, and shared by all viewers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from edge.video.pipeline import Annotated
from runtime.logs import get_logger
from runtime.ports import listen
from runtime.security.guard import rule
from runtime.security.listener import ListenerSecurity
from runtime.security.policy import check_listener
from runtime.security.roles import Access
from runtime.supervisor import Tier

log = get_logger("video.liveview")

BOUNDARY = "pgframe"

STATIC = Path(__file__).parent / "static"
PAGE = (STATIC / "liveview.html").read_text()

# The live view is for clinicians (and admins); nothing on it is public but the login page.
LIVE_RULES = (
    rule("/", Access.LIVE_VIEW, "GET"),
    rule("/status", Access.LIVE_VIEW, "GET"),
    rule("/frame.jpg", Access.LIVE_VIEW, "GET"),
    rule("/stream.mjpg", Access.LIVE_VIEW, "GET"),
    rule("/live/static/*", Access.LIVE_VIEW, "GET"),
)


class LiveView:
    """aiohttp server for one pipeline. A supervisor Component (tier SINK)."""

    tier = Tier.SINK
    essential = False  # see runtime/supervisor.py

    def __init__(
        self,
        latest: Callable[[], Annotated | None],
        status: Callable[[], dict[str, object]],
        room: str,
        host: str = "0.0.0.0",
        port: int = 8090,
        jpeg_quality: int = 75,
        max_fps: float = 30.0,
        name: str = "video-liveview",
        security: ListenerSecurity | None = None,
        port_key: str = "video.live_port in the gateway config",
    ) -> None:
        self.name = name
        self.security = security
        self.port_key = port_key  # named in the one-line error when the port is taken
        self._latest = latest
        self._status = status
        self.room = room
        self.host = host
        self.port = port
        self.jpeg_quality = jpeg_quality
        self.max_fps = max_fps
        self.viewers = 0
        self._cache: tuple[int, bytes] | None = None
        self._encode_lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._stopped = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        if self.security is not None:
            self.security.install(app)
        app.router.add_get("/", self._page)
        app.router.add_get("/status", self._status_json)
        app.router.add_get("/frame.jpg", self._frame)
        app.router.add_get("/stream.mjpg", self._stream)
        app.router.add_static("/live/static/", STATIC, show_index=False, follow_symlinks=False)
        return app

    async def start(self) -> None:
        self._stopped.clear()
        sec = self.security
        if sec is None:  # no guard: only ever on loopback
            check_listener(self.name, self.host, auth=False, tls=False, insecure_no_auth=False)
        kwargs = sec.runner_kwargs() if sec is not None else {"access_log": None}
        self._runner = web.AppRunner(self.app(), **kwargs)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=sec.ssl if sec is not None else None)
        runner, self._runner = self._runner, None
        await listen(runner, site, self.host, self.port, self.port_key)
        self._runner = runner
        if self.port == 0:
            server = site._server
            if isinstance(server, asyncio.base_events.Server) and server.sockets:
                self.port = int(server.sockets[0].getsockname()[1])
        log.info("liveview_started", room=self.room, port=self.port)

    async def run(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopped.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _jpeg(self) -> tuple[int, bytes] | None:
        """The newest annotated frame as JPEG, encoded once per frame for all viewers."""
        import cv2

        frame = self._latest()
        if frame is None:
            return None
        async with self._encode_lock:
            if self._cache is not None and self._cache[0] == frame.seq:
                return self._cache
            params = [int(cv2.IMWRITE_JPEG_QUALITY), self.jpeg_quality]
            ok, buf = await asyncio.to_thread(cv2.imencode, ".jpg", frame.image, params)
            if not ok:
                return None
            self._cache = (frame.seq, buf.tobytes())
            return self._cache

    async def _page(self, request: web.Request) -> web.Response:
        import html

        return web.Response(text=PAGE.replace("{room}", html.escape(self.room)), content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def _status_json(self, request: web.Request) -> web.Response:
        return web.json_response({"room": self.room, "viewers": self.viewers, **self._status()})

    async def _frame(self, request: web.Request) -> web.Response:
        jpg = await self._jpeg()
        if jpg is None:
            return web.Response(status=503, text="no frame yet")
        return web.Response(body=jpg[1], content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                "Cache-Control": "no-store",
            }
        )
        await resp.prepare(request)
        self.viewers += 1
        period = 1.0 / self.max_fps
        last_seq = -1
        try:
            while not self._stopped.is_set():
                t0 = time.monotonic()
                jpg = await self._jpeg()
                if jpg is not None and jpg[0] != last_seq:
                    last_seq = jpg[0]
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg[1])}\r\n\r\n"
                    await resp.write(head.encode() + jpg[1] + b"\r\n")
                await asyncio.sleep(max(0.005, period - (time.monotonic() - t0)))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.viewers -= 1
        return resp
