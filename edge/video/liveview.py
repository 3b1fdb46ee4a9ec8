"""The gateway's live view: the annotated video as MJPEG over HTTP.

A clinician opens ``http://<gateway>:<port>/`` in a browser on the hospital
network. The page (all assets inline, nothing fetched from outside) shows the
stream ``/stream.mjpg`` with the overlay and polls ``/status`` for fps,
latency and the finding state. ``/frame.jpg`` returns one JPEG. Frames are
JPEG-encoded only while someone watches, in a worker thread, at most
``max_fps`` per second, and shared by all viewers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web

from edge.video.pipeline import Annotated
from runtime.logs import get_logger
from runtime.supervisor import Tier

log = get_logger("video.liveview")

BOUNDARY = "pgframe"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PulseGate endoscopy: {room}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ margin: 0; background: #111; color: #eee; font: 15px system-ui, sans-serif; }}
header {{ padding: 8px 12px; display: flex; gap: 18px; align-items: baseline; }}
#state.on {{ color: #ff5050; font-weight: bold; }}
img {{ display: block; max-width: 100vw; max-height: calc(100vh - 40px); margin: 0 auto; }}
</style></head><body>
<header><b>Room {room}</b><span id="state">no finding</span><span id="fps">- fps</span>
<span id="lat">- ms</span><span id="drop"></span></header>
<img id="video" src="stream.mjpg" alt="endoscopy video with polyp overlay">
<script>
async function poll() {{
  try {{
    const s = await (await fetch("status", {{cache: "no-store"}})).json();
    const st = document.getElementById("state");
    st.textContent = s.finding_active ? "POLYP" : "no finding";
    st.className = s.finding_active ? "on" : "";
    document.getElementById("fps").textContent = s.fps.toFixed(1) + " fps";
    document.getElementById("lat").textContent = "p95 " + (s.latency_ms_p95 ?? "-") + " ms";
    document.getElementById("drop").textContent = s.dropped_frames + " dropped";
  }} catch (e) {{ document.getElementById("state").textContent = "gateway unreachable"; }}
}}
setInterval(poll, 500); poll();
</script></body></html>
"""


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
    ) -> None:
        self.name = name
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
        app.router.add_get("/", self._page)
        app.router.add_get("/status", self._status_json)
        app.router.add_get("/frame.jpg", self._frame)
        app.router.add_get("/stream.mjpg", self._stream)
        return app

    async def start(self) -> None:
        self._stopped.clear()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
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

        return web.Response(text=PAGE.format(room=html.escape(self.room)), content_type="text/html")

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
