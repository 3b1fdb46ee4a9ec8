"""The crew page on the ambulance gateway: pick the receiving hospital and the complaint, see the ED's ack.

Routes (a prefix of their own, so an authentication middleware can cover them
with one rule, like the nurse page's):

    GET  /crew                    the page (static/index.html; all assets local: no signal in a tunnel)
    GET  /crew/static/{file}      crew.js, crew.css
    GET  /crew/api/state          hospitals, complaints, beds, coarse position, the notice and its ack (JSON)
    POST /crew/api/notice         {"hospital", "complaint", "bed"}  -> send or update the pre-arrival notice
    POST /crew/api/finish         {"state": "arrived" | "cancelled"}

POST bodies must be ``application/json`` (a cross-site form cannot send it
without a CORS preflight this server never grants), at most 4 kB. Every value
is picked from a fixed list: there is no free-text field anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from edge.notices import NoticeError, NoticeSender

STATIC = Path(__file__).parent / "static"
ROUTES = ("/crew", "/crew/static/", "/crew/api/")


class CrewPage:
    def __init__(self, sender: NoticeSender, status: Callable[[], dict[str, Any]],
                 title: str = "PulseGate crew") -> None:
        self.sender = sender
        self.status = status
        self.title = title
        self.requests = 0
        self.rejected = 0

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/crew", self._index)
        app.router.add_get("/crew/api/state", self._state)
        app.router.add_post("/crew/api/notice", self._notice)
        app.router.add_post("/crew/api/finish", self._finish)
        app.router.add_static("/crew/static/", STATIC, show_index=False, follow_symlinks=False)

    def state(self) -> dict[str, Any]:
        st = self.sender.state()
        extra = self.status()
        return {**st, "title": self.title, "links": extra.get("links"), "budget": extra.get("budget")}

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def _json(self, request: web.Request) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="send application/json")
        if (request.content_length or 0) > 4096:
            raise web.HTTPRequestEntityTooLarge(max_size=4096, actual_size=request.content_length or 0)
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="body is not JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        return body

    async def _act(self, request: web.Request, action: Callable[[dict[str, Any]], object]) -> web.Response:
        self.requests += 1
        body = await self._json(request)
        try:
            action(body)
        except NoticeError as exc:
            self.rejected += 1
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True, **self.state()})

    async def _notice(self, request: web.Request) -> web.Response:
        return await self._act(request, lambda b: self.sender.request(
            str(b.get("hospital", "")), str(b.get("complaint", "")), str(b.get("bed", ""))))

    async def _finish(self, request: web.Request) -> web.Response:
        return await self._act(request, lambda b: self.sender.finish(str(b.get("state", ""))))
