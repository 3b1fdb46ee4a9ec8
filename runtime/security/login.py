"""The login routes every guarded listener shares.

    GET  /login                 the login page (static; its script is a file: the CSP allows no inline script)
    POST /auth/login            {"user", "password"} -> session cookie + {"csrf", "user", "roles", ...}
    POST /auth/logout           ends the session
    GET  /auth/methods          which logins this listener offers (public)
    GET  /auth/me               who is logged in, their CSRF token and what they may do
    GET  /auth/oidc/login       -> the identity provider (authorization code + PKCE), when [auth.oidc] is set
    GET  /auth/oidc/callback    <- back from it: the code is exchanged, the ID token verified, a session made

Local passwords are checked in a worker thread (argon2 takes ~50 ms and 64 MiB),
at most two at once, after the lockout check (a locked name costs no hash).
The session cookie is HttpOnly, SameSite=Strict and, over TLS, Secure with the
``__Host-`` prefix; its name carries the listener's name, so the nurse page and
the live view on one host keep separate sessions.
"""

from __future__ import annotations

import asyncio
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .jsonbody import read_json
from .oidc import OidcError
from .roles import Access, Principal, Role
from .users import MAX_PASSWORD, USERNAME

if TYPE_CHECKING:
    from .guard import Guard

STATIC = Path(__file__).parent / "static"
OIDC_COOKIE = "pg_oidc_state"
BAD_LOGIN = "wrong user name or password"


def safe_next(value: str | None) -> str:
    """A local path to go back to after login (never another site: no scheme, no //host, no backslash)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 512:
        return "/"
    return value


class LoginRoutes:
    def __init__(self, guard: Guard) -> None:
        self.g = guard

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/login", self._page)
        app.router.add_post("/auth/login", self._login)
        app.router.add_post("/auth/logout", self._logout)
        app.router.add_get("/auth/me", self._me)
        app.router.add_get("/auth/methods", self._methods)
        app.router.add_static("/auth/static/", STATIC, show_index=False, follow_symlinks=False)
        if self.g.oidc is not None:
            app.router.add_get("/auth/oidc/login", self._oidc_login)
            app.router.add_get("/auth/oidc/callback", self._oidc_callback)

    async def _page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "login.html", headers={"Cache-Control": "no-store"})

    def _set_cookie(self, resp: web.StreamResponse, sid: str) -> None:
        resp.set_cookie(self.g.cookie, sid, httponly=True, secure=self.g.tls, samesite="Strict", path="/",
                        max_age=int(self.g.sessions.absolute_s))

    def _me_body(self, p: Principal, csrf: str | None) -> dict[str, Any]:
        return {"ok": True, "user": p.name, "roles": sorted(p.roles), "wards": sorted(p.wards),
                "sites": sorted(p.sites), "method": p.method, "csrf": csrf,
                "may_act": p.may(Access.ACT_ON_ALARMS) and (self.g.ward is None or p.on_ward(self.g.ward)),
                "max_silence_s": p.max_silence_s(), "oidc": self.g.oidc is not None,
                "local": self.g.users is not None}

    async def _login(self, request: web.Request) -> web.Response:
        g = self.g
        client = request.remote or "unknown"
        if g.users is None:
            return web.json_response({"ok": False, "error": "local accounts are not enabled here"}, status=404)
        body = await read_json(request, 4096, 4)
        user, password = body.get("user"), body.get("password")
        if not isinstance(user, str) or not isinstance(password, str) or len(password) > MAX_PASSWORD:
            return web.json_response({"ok": False, "error": "send user and password"}, status=400)
        user = user.strip().lower()
        name = user if USERNAME.fullmatch(user) else "-invalid-"
        wait = g.throttle.check(name, client)
        if wait > 0:
            g.audit.record("login", "locked", name, client, retry_after_s=round(wait))
            return web.json_response({"ok": False, "error": "too many failed logins: try again later"},
                                     status=429, headers={"Retry-After": str(int(wait) + 1)})
        g.users.reload_if_changed()
        async with g.kdf_slots:
            found = await asyncio.to_thread(g.users.verify_password, name, password)
        if found is None:
            locked = g.throttle.failure(name, client)
            g.audit.record("login", "failed", name, client)
            for scope in locked:
                g.audit.record("lockout", "locked", name, client, scope=scope)
            return web.json_response({"ok": False, "error": BAD_LOGIN}, status=401)
        if found.roles <= {Role.SERVICE}:
            g.audit.record("login", "denied", name, client, reason="service accounts use API tokens")
            return web.json_response({"ok": False, "error": "service accounts use API tokens"}, status=403)
        g.throttle.success(name)
        principal = found.principal("session")
        sid, session = g.sessions.create(principal, found.generation)
        g.audit.record("login", "ok", name, client, method="password")
        resp = web.json_response(self._me_body(principal, session.csrf))
        self._set_cookie(resp, sid)
        return resp

    async def _logout(self, request: web.Request) -> web.Response:
        sid = request.cookies.get(self.g.cookie)
        from .guard import PRINCIPAL

        p = request.get(PRINCIPAL)
        if sid:
            self.g.sessions.delete(sid)
        self.g.audit.record("logout", "ok", p.name if p is not None else "-", request.remote or "")
        resp = web.json_response({"ok": True})
        resp.del_cookie(self.g.cookie, path="/", secure=self.g.tls, httponly=True, samesite="Strict")
        return resp

    async def _methods(self, request: web.Request) -> web.Response:
        return web.json_response({"local": self.g.users is not None, "oidc": self.g.oidc is not None})

    async def _me(self, request: web.Request) -> web.Response:
        from .guard import SESSION, principal_of

        session = request.get(SESSION)
        return web.json_response(self._me_body(principal_of(request), getattr(session, "csrf", None)))

    # -- OIDC ----------------------------------------------------------------------------------------------
    def _redirect_url(self, request: web.Request) -> str:
        assert self.g.oidc is not None
        configured = self.g.oidc.cfg.redirect_url
        if configured:
            return configured
        return f"{self.g.hosts.own_origin(request)}/auth/oidc/callback"

    async def _oidc_login(self, request: web.Request) -> web.Response:
        assert self.g.oidc is not None
        try:
            url, state = await self.g.oidc.begin(self._redirect_url(request), safe_next(request.query.get("next")))
        except OidcError as exc:
            self.g.audit.record("login", "failed", "-", request.remote or "", method="oidc", reason=str(exc)[:200])
            return web.json_response({"ok": False, "error": "identity provider unreachable"}, status=503)
        resp = web.HTTPFound(url)
        # Lax, not Strict: the identity provider's redirect back is a cross-site navigation
        resp.set_cookie(OIDC_COOKIE, state, httponly=True, secure=self.g.tls, samesite="Lax", path="/auth/oidc/",
                        max_age=600)
        raise resp

    async def _oidc_callback(self, request: web.Request) -> web.Response:
        g = self.g
        assert g.oidc is not None
        client = request.remote or "unknown"
        state, code = request.query.get("state", ""), request.query.get("code", "")
        if not state or not code or request.cookies.get(OIDC_COOKIE) != state:
            g.audit.record("login", "denied", "-", client, method="oidc", reason="state does not match the browser")
            return web.json_response({"ok": False, "error": "login state does not match: start again"}, status=400)
        try:
            principal, next_path = await g.oidc.finish(state, code, self._redirect_url(request))
        except OidcError as exc:
            g.audit.record("login", "failed", "-", client, method="oidc", reason=str(exc)[:200])
            return web.json_response({"ok": False, "error": "login refused"}, status=401)
        if not principal.roles:
            g.audit.record("login", "denied", principal.name, client, method="oidc", reason="no PulseGate role")
            return web.json_response({"ok": False, "error": "your account has no PulseGate role"}, status=403)
        sid, _ = g.sessions.create(principal)
        g.audit.record("login", "ok", principal.name, client, method="oidc")
        # A page that navigates on (meta refresh): the SameSite=Strict cookie set here is sent on that
        # same-site navigation, where a redirect still inside the cross-site chain would go without it.
        target = html.escape(safe_next(next_path), quote=True)
        page = (f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={target}">'
                f'<title>Signed in</title><p>Signed in. <a href="{target}">Continue</a></p>')
        resp = web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})
        self._set_cookie(resp, sid)
        resp.del_cookie(OIDC_COOKIE, path="/auth/oidc/")
        return resp
