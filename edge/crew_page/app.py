"""The crew page on the ambulance gateway: pick the receiving hospital and the complaint, see the ED's ack.

Routes (a prefix of their own, so an authentication middleware can cover them
with one rule, like the nurse page's):

    GET  /crew                    the page (static/index.html; all assets local: no signal in a tunnel)
    GET  /crew/static/{file}      crew.js, crew.css
    GET  /crew/api/state          hospitals, complaints, beds, coarse position, the notice and its ack (JSON)
    POST /crew/api/notice         {"hospital", "complaint", "bed"}  -> send or update the pre-arrival notice
    POST /crew/api/finish         {"state": "arrived" | "cancelled"}

Behind the gateway's guard (``CREW_RULES``, runtime/security): reading needs
``view_ward``, sending or finishing a notice ``act_on_alarms`` on the
gateway's ward (the crew log in as nurses of the vehicle), with the CSRF token
and Origin checks of every POST; each action is audited under the user's name.
POST bodies must be ``application/json``, at most 4 kB. Every value is picked
from a fixed list: there is no free-text field anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from edge.notices import NoticeError, NoticeSender
from runtime.security.guard import client_of, principal_of, rule
from runtime.security.jsonbody import read_json
from runtime.security.listener import ListenerSecurity
from runtime.security.roles import Access

STATIC = Path(__file__).parent / "static"
CREW_RULES = (
    rule("/crew", Access.VIEW_WARD, "GET"),
    rule("/crew/static/*", Access.VIEW_WARD, "GET"),
    rule("/crew/api/state", Access.VIEW_WARD, "GET"),
    rule("/crew/api/notice", Access.ACT_ON_ALARMS, "POST"),
    rule("/crew/api/finish", Access.ACT_ON_ALARMS, "POST"),
)


class CrewPage:
    def __init__(self, sender: NoticeSender, status: Callable[[], dict[str, Any]],
                 title: str = "PulseGate crew", security: ListenerSecurity | None = None,
                 ward: str | None = None) -> None:
        self.security = security
        self.ward = ward
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

    async def _act(self, request: web.Request, name: str, action: Callable[[dict[str, Any]], object]
                   ) -> web.Response:
        self.requests += 1
        p = principal_of(request)
        body = await read_json(request, 4096, 4)
        if self.ward is not None and not p.on_ward(self.ward):
            self._audit(name, "denied", p.name, request, "not your ward")
            raise web.HTTPForbidden(text=f"{p.name} is not assigned to {self.ward}")
        try:
            action(body)
        except NoticeError as exc:
            self.rejected += 1
            self._audit(name, "failed", p.name, request, str(exc))
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        self._audit(name, "ok", p.name, request, "")
        return web.json_response({"ok": True, **self.state()})

    def _audit(self, action: str, outcome: str, user: str, request: web.Request, reason: str) -> None:
        if self.security is not None:
            self.security.guard.audit.record(action, outcome, user, client_of(request), reason=reason or None)

    async def _notice(self, request: web.Request) -> web.Response:
        return await self._act(request, "pre_arrival_notice", lambda b: self.sender.request(
            str(b.get("hospital", "")), str(b.get("complaint", "")), str(b.get("bed", ""))))

    async def _finish(self, request: web.Request) -> web.Response:
        return await self._act(request, "pre_arrival_finish", lambda b: self.sender.finish(str(b.get("state", ""))))
