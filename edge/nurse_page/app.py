"""The nurse-station page, served by the gateway itself (aiohttp), all assets local.

Routes (none clash with the daemon's /metrics and /healthz):

    GET  /                      the page (static/index.html)
    GET  /nurse/static/{file}   app.js, style.css (no CDN: wards are often offline)
    GET  /nurse/ws              WebSocket: JSON state pushed on every alarm change and each second
    GET  /nurse/api/state       the same state once (JSON)
    GET  /nurse/api/trends?bed=B&hours=H  one bed's per-minute trends from the gateway's memory (JSON)
    GET  /favicon.ico           the page's icon (no 404 in the browser console)
    POST /nurse/api/ack         {"alarm_id", "verdict"?} -> acknowledge (audited under the logged-in user), with an
                                optional one-tap verdict (edge/feedback.py: fixed codes only; a verdict with
                                free text is refused and counted, the acknowledgement still happens)
    POST /nurse/api/event       {"bed", "code", "t"?}   -> record a clinical event (rapid response, ICU transfer,
                                sepsis pathway) with its time
    POST /nurse/api/silence     {"alarm_id", "seconds"} -> pause audio (at most the role's limit)

Every route is behind the listener's guard (runtime/security: login or API
token, roles per ``NURSE_RULES``, CSRF token and Origin on the POSTs, Host
allow-list, security headers); the WebSocket admits only this page's Origin,
frames of at most 4 kB and a few sockets per client. An action is made by the
authenticated user, on the gateway's ward (nurses: the wards assigned) and
audited with their name; an ``initials`` field in a body is ignored (older
clients). The POST handlers accept only bounded ``application/json`` bodies; a
silence longer than the role allows, not finite or not positive is refused.

State comes from ``state_provider()`` (ClinicalStage.snapshot: beds with live
values, trends, NEWS2; open alarms ordered by priority); ``cloud_status()``
drives the "cloud link down" banner and, with ``link_info()`` (backlog), the header's steady link
indicator; ``trends_provider(bed, hours)`` (ClinicalStage.trends) the bed view's sparklines. Bed ids
are shown; patient references never are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from clinical.alarms.manager import AlarmActionError
from clinical.alarms.model import AlarmUpdate
from clinical.feedback import EventError
from edge.feedback import Feedback
from runtime.logs import get_logger
from runtime.security.guard import client_of, principal_of, rule
from runtime.security.jsonbody import BodyError, finite_number, read_json
from runtime.security.listener import ListenerSecurity
from runtime.security.roles import Access, Principal

log = get_logger("edge.nurse_page")
STATIC = Path(__file__).parent / "static"
StateProvider = Callable[[], dict[str, Any]]
AckHandler = Callable[[str, str], object]
SilenceHandler = Callable[[str, str, float], object]
TrendsProvider = Callable[[str, float], dict[str, Any] | None]
MAX_TREND_HOURS = 24.0

NURSE_RULES = (
    rule("/", Access.VIEW_WARD, "GET"),
    rule("/nurse/static/*", Access.VIEW_WARD, "GET"),
    rule("/nurse/ws", Access.VIEW_WARD, "GET"),
    rule("/nurse/api/state", Access.VIEW_WARD, "GET"),
    rule("/nurse/api/trends", Access.VIEW_WARD, "GET"),
    rule("/favicon.ico", Access.PUBLIC, "GET", "HEAD"),
    rule("/nurse/api/ack", Access.ACT_ON_ALARMS, "POST"),
    rule("/nurse/api/silence", Access.ACT_ON_ALARMS, "POST"),
    rule("/nurse/api/event", Access.ACT_ON_ALARMS, "POST"),
)


class NursePage:
    """Owns the WebSocket clients and the push task. ``offer`` is the alarm sink (non-blocking)."""

    def __init__(
        self,
        state_provider: StateProvider,
        ack_handler: AckHandler,
        cloud_status: Callable[[], bool],
        silence_handler: SilenceHandler | None = None,
        *,
        title: str = "PulseGate nurse station",
        push_interval_s: float = 1.0,
        min_push_gap_s: float = 0.05,
        max_silence_s: float = 600.0,  # the cap ([clinical] max_silence_s); each role's own is lower or equal
        security: ListenerSecurity | None = None,
        ward: str | None = None,
        trends_provider: TrendsProvider | None = None,
        link_info: Callable[[], dict[str, Any]] | None = None,
        feedback: Feedback | None = None,
    ) -> None:
        self.state_provider = state_provider
        self.ack_handler = ack_handler
        self.silence_handler = silence_handler
        self.cloud_status = cloud_status
        self.title = title
        self.push_interval_s = push_interval_s
        self.min_push_gap_s = min_push_gap_s
        self.max_silence_s = max_silence_s
        self.trends_provider = trends_provider
        self.feedback = feedback  # verdicts and clinical events (edge/feedback.py)
        self.link_info = link_info  # {"configured", "connected", "backlog"} for the steady link indicator
        self.security = security
        self.ward = ward
        self.clients: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.pushes = 0
        self.offers = 0

    # -- alarm sink ------------------------------------------------------------------------------------------
    def offer(self, u: AlarmUpdate) -> None:
        self.offers += 1
        self._changed.set()

    # -- state ------------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        s = self.state_provider()
        try:
            online = bool(self.cloud_status())
        except Exception:
            online = False
        return {**s, "cloud_online": online, "cloud_link": self._link(online), "title": self.title,
                "server_time": time.time(), "max_silence_s": self.max_silence_s}

    def _link(self, online: bool) -> dict[str, Any]:
        """The cloud link for the header's indicator: configured, connected, messages waiting (backlog)."""
        info: dict[str, Any] = {"configured": True, "connected": online, "backlog": None}
        if self.link_info is not None:
            try:
                info.update(self.link_info())
            except Exception:
                log.error("link_info_failed", exc=True)
        return info

    async def _push_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.push_interval_s)
            self._changed.clear()
            if self.clients:
                await self.broadcast()
            await asyncio.sleep(self.min_push_gap_s)

    async def broadcast(self) -> None:
        text = json.dumps(self.state())
        self.pushes += 1
        for ws in list(self.clients):
            if ws.closed:
                continue
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                self.clients.discard(ws)

    # -- aiohttp ------------------------------------------------------------------------------------------------
    def setup(self, app: web.Application) -> None:
        """Add the page's routes and its push task to ``app`` (the daemon's server or make_nurse_app's).

        The guard itself is installed by whoever owns the app (HttpServer, make_nurse_app)."""
        app[PAGE_KEY] = self
        app.router.add_get("/", self._index)
        app.router.add_get("/nurse/ws", self._ws)
        app.router.add_get("/nurse/api/state", self._state)
        app.router.add_post("/nurse/api/ack", self._ack)
        app.router.add_post("/nurse/api/silence", self._silence)
        app.router.add_post("/nurse/api/event", self._event)
        app.router.add_get("/nurse/api/trends", self._trends)
        app.router.add_get("/favicon.ico", self._favicon)
        app.router.add_static("/nurse/static/", STATIC, show_index=False, follow_symlinks=False)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_startup(self, app: web.Application) -> None:
        self._task = asyncio.create_task(self._push_loop(), name="nurse_page.push")

    async def _on_shutdown(self, app: web.Application) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for ws in list(self.clients):
            await ws.close(code=1001, message=b"server shutdown")

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def _favicon(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "favicon.svg", headers={"Content-Type": "image/svg+xml",
                                                                 "Cache-Control": "max-age=86400"})

    async def _trends(self, request: web.Request) -> web.Response:
        """One bed's trends for the bed view: ``bed`` (required), ``hours`` (default 6, at most 24)."""
        if self.trends_provider is None:
            return web.json_response({"ok": False, "error": "trends are not enabled"}, status=404)
        bed = request.query.get("bed", "")[:64]
        try:
            hours = float(request.query.get("hours", "6"))
        except ValueError:
            hours = float("nan")
        if not 0 < hours <= MAX_TREND_HOURS:
            return web.json_response({"ok": False, "error": f"hours must be in (0, {MAX_TREND_HOURS:g}]"},
                                     status=400)
        body = self.trends_provider(bed, hours)
        if body is None:
            return web.json_response({"ok": False, "error": "no such bed"}, status=404)
        return web.json_response({"ok": True, **body})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        if self.security is None:
            raise web.HTTPForbidden(text="the nurse page needs its listener's guard")
        async with self.security.ws.accept(request) as ws:
            self.clients.add(ws)
            try:
                await ws.send_str(json.dumps(self.state()))
                async for msg in ws:
                    if msg.type == WSMsgType.TEXT and msg.data == "refresh":
                        await ws.send_str(json.dumps(self.state()))
                    elif msg.type == WSMsgType.ERROR:
                        break
            finally:
                self.clients.discard(ws)
        return ws

    async def _action(self, request: web.Request, action: str) -> tuple[Principal, dict[str, Any]]:
        """The user and body of an acknowledge/silence; 403 off the user's wards."""
        p = principal_of(request)
        limits = self.security.guard.cfg if self.security is not None else None
        body = await read_json(request, *((limits.max_body_bytes, limits.max_json_depth) if limits else ()))
        if self.ward is not None and not p.on_ward(self.ward):
            self._audit(action, "denied", p, request, body, reason="not your ward")
            raise web.HTTPForbidden(text=f"{p.name} is not assigned to ward {self.ward}")
        return p, body

    def _audit(self, action: str, outcome: str, p: Principal, request: web.Request, body: dict[str, Any],
               **detail: Any) -> None:
        if self.security is not None:
            alarm_id = body.get("alarm_id")
            self.security.guard.audit.record(action, outcome, p.name, client_of(request),
                                             alarm_id=alarm_id if isinstance(alarm_id, str) else None, **detail)

    async def _ack(self, request: web.Request) -> web.Response:
        p, body = await self._action(request, "acknowledge")
        alarm_id = str(body.get("alarm_id", ""))[:128]
        out: dict[str, Any] = {}
        try:
            if self.feedback is not None:
                out = self.feedback.acknowledge(alarm_id, p.name, body)
            else:
                self.ack_handler(alarm_id, p.name)
        except AlarmActionError as exc:
            self._audit("acknowledge", "failed", p, request, body, reason=str(exc))
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        self._audit("acknowledge", "ok", p, request, body, verdict=out.get("verdict"),
                    verdict_rejected=out.get("verdict_rejected"))
        self._changed.set()
        return web.json_response({"ok": True, "by": p.name, **out})

    async def _event(self, request: web.Request) -> web.Response:
        if self.feedback is None:
            return web.json_response({"ok": False, "error": "clinical events are not enabled"}, status=404)
        p, body = await self._action(request, "clinical_event")
        try:
            out = self.feedback.record_event(body, p.name)
        except EventError as exc:
            self._audit("clinical_event", "failed", p, request, {}, reason=str(exc))
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        self._audit("clinical_event", "ok", p, request, {}, bed=out["bed"], code=out["code"])
        return web.json_response({"ok": True, "by": p.name, **out})

    async def _silence(self, request: web.Request) -> web.Response:
        if self.silence_handler is None:
            return web.json_response({"ok": False, "error": "silence is not enabled"}, status=404)
        p, body = await self._action(request, "silence")
        limit = min(p.max_silence_s(), self.max_silence_s)
        try:
            seconds = finite_number(body.get("seconds", limit), "seconds", 1.0, limit)
            self.silence_handler(str(body.get("alarm_id", ""))[:128], p.name, seconds)
        except (AlarmActionError, BodyError) as exc:
            self._audit("silence", "failed", p, request, body, reason=str(exc))
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        self._audit("silence", "ok", p, request, body, seconds=seconds)
        self._changed.set()
        return web.json_response({"ok": True, "by": p.name, "seconds": seconds})


PAGE_KEY = web.AppKey("nurse_page", NursePage)


def make_nurse_app(
    state_provider: StateProvider,
    ack_handler: AckHandler,
    cloud_status: Callable[[], bool],
    silence_handler: SilenceHandler | None = None,
    **kwargs: Any,
) -> web.Application:
    """A standalone Application with the page (and its guard, ``security=``); ``app[PAGE_KEY].offer`` is the
    alarm sink."""
    app = web.Application()
    page = NursePage(state_provider, ack_handler, cloud_status, silence_handler, **kwargs)
    if page.security is not None:
        page.security.install(app)
    page.setup(app)
    return app
