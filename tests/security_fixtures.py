"""A real aiohttp listener behind the guard, with one account per role, for the security tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web
from argon2 import PasswordHasher

from bench.localservices import free_port
from runtime.security.config import AuthSection, TlsSection
from runtime.security.guard import Rule, principal_of, rule
from runtime.security.jsonbody import BodyError, finite_number, read_json
from runtime.security.listener import ListenerSecurity, secure_listener
from runtime.security.roles import Access
from runtime.security.users import UserStore

FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
PASSWORDS = {"nina": "nurse-password-1", "vic": "viewer-password-1", "carl": "charge-password-1",
             "clara": "clinician-password-1", "ada": "admin-password-1", "prom": "service-password-1"}
ROLES = {"nina": "nurse", "vic": "viewer", "carl": "charge_nurse", "clara": "clinician", "ada": "admin",
         "prom": "service"}

RULES: tuple[Rule, ...] = (
    rule("/", Access.VIEW_WARD, "GET"),
    rule("/api/state", Access.VIEW_WARD, "GET"),
    rule("/api/ack", Access.ACT_ON_ALARMS, "POST"),
    rule("/ws", Access.VIEW_WARD, "GET"),
    rule("/live", Access.LIVE_VIEW, "GET"),
)


def make_users(path: Path) -> tuple[UserStore, str]:
    store = UserStore(path, FAST)
    for name, pw in PASSWORDS.items():
        store.add(name, pw, [ROLES[name]], wards=["ward-7"] if name == "nina" else [])
    token = store.new_token("prom")
    store.save()
    return store, token


@dataclass
class Served:
    url: str
    sec: ListenerSecurity
    token: str
    acks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    def client(self, **kw: Any) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **kw)

    async def login(self, s: aiohttp.ClientSession, user: str, password: str | None = None) -> str:
        r = await s.post(self.url + "auth/login", json={"user": user, "password": password or PASSWORDS[user]},
                         headers={"Origin": self.origin}, ssl=False)
        body = await r.json()
        assert r.status == 200, body
        return str(body["csrf"])


def build_app(sec: ListenerSecurity, acks: list[dict[str, Any]]) -> web.Application:
    app = web.Application()
    sec.install(app)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><p>ward</p>", content_type="text/html")

    async def state(request: web.Request) -> web.Response:
        return web.json_response({"beds": ["bed-07"], "user": principal_of(request).name})

    async def ack(request: web.Request) -> web.Response:
        body = await read_json(request, sec.guard.cfg.max_body_bytes, sec.guard.cfg.max_json_depth)
        p = principal_of(request)
        try:
            seconds = finite_number(body.get("seconds", 60), "seconds", 1, p.max_silence_s())
        except BodyError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        acks.append({"by": p.name, "seconds": seconds})
        return web.json_response({"ok": True, "by": p.name})

    async def ws(request: web.Request) -> web.WebSocketResponse:
        async with sec.ws.accept(request) as sock:
            await sock.send_str("state")
            async for msg in sock:
                if msg.type == WSMsgType.TEXT:
                    await sock.send_str("echo:" + msg.data)
        return sock

    async def simple(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", page)
    app.router.add_get("/api/state", state)
    app.router.add_post("/api/ack", ack)
    app.router.add_get("/ws", ws)
    app.router.add_get("/live", simple)
    app.router.add_get("/metrics", simple)
    app.router.add_get("/secret", simple)
    app.router.add_get("/healthz", simple)
    return app


@asynccontextmanager
async def serve(tmp_path: Path, auth: AuthSection | None = None, *, tls: TlsSection | None = None,
                sessions: Any = None) -> AsyncIterator[Served]:
    store, token = make_users(tmp_path / "users.json")
    auth = auth or AuthSection(users_file=tmp_path / "users.json", metrics_from_loopback=False,
                               max_body_bytes=1024 * 1024)
    sec = secure_listener("test", "127.0.0.1", auth, tls, RULES, users=store, ward="ward-7")
    if sessions is not None:
        sec.guard.sessions = sessions
    acks: list[dict[str, Any]] = []
    app = build_app(sec, acks)
    runner = web.AppRunner(app, **sec.runner_kwargs())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=sec.ssl).start()
    try:
        yield Served(f"{sec.scheme}://127.0.0.1:{port}/", sec, token, acks)
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)
