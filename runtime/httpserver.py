"""The daemon's HTTP server component: /metrics, health, plus the area's routes.

Health, as systemd, Kubernetes and load balancers use it (docs/operations.md):

    GET /livez    liveness: the process and its event loop answer (200 while this handler runs)
    GET /readyz   readiness: the daemon can do its job now (200, else 503), with each component's state
    GET /healthz  the same as /readyz (kept for existing probes)

``health()`` (sync or async) returns ``{"ok": bool, ...}``; ``ok`` is readiness. A port already taken
raises :class:`runtime.ports.PortInUseError` naming ``port_key`` (the config key that sets it).

With ``security`` (runtime/security: guard, TLS, aiohttp limits) every route is
behind the login or a token (``/metrics`` also from loopback when configured;
the health routes are public); without it the server starts only on loopback.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from runtime.logs import get_logger
from runtime.ports import listen
from runtime.security.listener import ListenerSecurity
from runtime.security.policy import check_listener
from runtime.supervisor import Tier

log = get_logger("http")
Health = Callable[[], dict[str, object] | Awaitable[dict[str, object]]]


class HttpServer:
    name = "http"
    tier = Tier.SINK

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        registry: CollectorRegistry,
        health: Health | None = None,
        port_key: str = "port",
        security: ListenerSecurity | None = None,
    ) -> None:
        if security is None:
            check_listener("http", host, auth=False, tls=False, insecure_no_auth=False)
        else:
            security.install(app)
        self.security = security
        self.app = app
        self.host = host
        self.port = port
        self.port_key = port_key
        self.registry = registry
        self.health: Health = health or (lambda: {"ok": True})
        self.started = time.monotonic()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._healthz)
        app.router.add_get("/livez", self._livez)
        self._runner: web.AppRunner | None = None
        self._stop = asyncio.Event()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        state = self.health()
        if inspect.isawaitable(state):
            state = await state
        assert isinstance(state, dict)
        return web.json_response(state, status=200 if state.get("ok") else 503)

    async def _livez(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True, "uptime_s": round(time.monotonic() - self.started, 1)})

    async def start(self) -> None:
        if self._runner is not None:
            return
        sec = self.security
        kwargs = sec.runner_kwargs() if sec is not None else {"access_log": None}
        self._runner = web.AppRunner(self.app, handle_signals=False, **kwargs)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True,
                           ssl_context=sec.ssl if sec is not None else None)
        runner, self._runner = self._runner, None
        await listen(runner, site, self.host, self.port, self.port_key)
        self._runner = runner
        if self.port == 0:
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]
        log.info("http_listening", host=self.host, port=self.port, tls=sec is not None and sec.ssl is not None)
        self._stop.clear()

    async def run(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        self._stop.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
