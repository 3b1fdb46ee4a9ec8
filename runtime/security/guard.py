"""One guard per HTTP listener: who is asking, may they, and is the request well-formed.

``Guard.install(app)`` adds, in this order, to every route of the app:

1. Host allow-list (DNS rebinding), a cap on requests in flight and on state changes a minute per client
   address;
2. Origin check on every state change (a cross-site POST is refused even before authentication);
3. authentication: a session cookie, a bearer API token (``pgt_...``, machines) or a bearer JWT from the
   configured OIDC issuer; none -> 401, or a redirect to ``/login`` for a page;
4. authorisation: the first ``Rule`` matching method and path names the ``Access`` needed; a path no rule
   names needs ``admin`` (default deny); wrong role -> 403, audited;
5. CSRF: a state change made with a session cookie must carry the session's token in ``X-CSRF-Token``;

and security headers on every response (``headers.py``). The login routes themselves are in ``login.py``.
With ``insecure_no_auth`` everything but steps 3-5 still applies and every request runs as ``INSECURE``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from . import headers
from .audit import Audit
from .config import AuthSection
from .oidc import OidcError, OidcProvider
from .origins import SAFE_METHODS, HostPolicy
from .policy import is_loopback
from .roles import INSECURE, Access, Principal, Role
from .sessions import Session, SessionStore
from .throttle import LoginThrottle
from .users import UserStore

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRINCIPAL = web.RequestKey("pulsegate.principal", Principal)
SESSION = web.RequestKey("pulsegate.session", Session)
CSRF_HEADER = "X-CSRF-Token"
LOOPBACK_SERVICE = Principal("loopback", frozenset({Role.SERVICE}), method="loopback")


@dataclass(frozen=True)
class Rule:
    """``path`` is exact, or a prefix when it ends in ``*``; ``methods`` None means any method."""

    path: str
    access: Access
    methods: frozenset[str] | None = None
    loopback_anonymous: bool = False  # anonymous requests from 127.0.0.1/::1 pass (Prometheus on the box)

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path


def rule(path: str, access: Access, *methods: str, loopback_anonymous: bool = False) -> Rule:
    return Rule(path, access, frozenset(methods) if methods else None, loopback_anonymous)


BUILTIN_RULES = (
    rule("/login", Access.PUBLIC, "GET", "HEAD"),
    rule("/auth/login", Access.PUBLIC, "POST"),
    rule("/auth/static/*", Access.PUBLIC, "GET", "HEAD"),
    rule("/auth/oidc/login", Access.PUBLIC, "GET"),
    rule("/auth/oidc/callback", Access.PUBLIC, "GET"),
    rule("/auth/methods", Access.PUBLIC, "GET"),
    rule("/auth/me", Access.AUTHENTICATED, "GET"),
    rule("/auth/logout", Access.AUTHENTICATED, "POST"),
    rule("/healthz", Access.PUBLIC, "GET", "HEAD"),
    rule("/livez", Access.PUBLIC, "GET", "HEAD"),  # liveness and readiness probes (systemd, load balancers)
    rule("/readyz", Access.PUBLIC, "GET", "HEAD"),
)


def principal_of(request: web.Request) -> Principal:
    """The authenticated principal of a request the guard let through."""
    try:
        return request[PRINCIPAL]
    except KeyError:
        raise web.HTTPUnauthorized(text="not authenticated") from None


def client_of(request: web.Request) -> str:
    return request.remote or "unknown"


class Guard:
    def __init__(self, cfg: AuthSection, *, listener: str, tls: bool, rules: Sequence[Rule],
                 users: UserStore | None = None, oidc: OidcProvider | None = None, audit: Audit | None = None,
                 sessions: SessionStore | None = None, throttle: LoginThrottle | None = None,
                 ward: str | None = None) -> None:
        self.cfg = cfg
        self.listener = listener
        self.tls = tls
        metrics = rule("/metrics", Access.METRICS, "GET", loopback_anonymous=cfg.metrics_from_loopback)
        self.rules = (*BUILTIN_RULES, metrics, *rules)
        self.users = users
        self.oidc = oidc
        self.audit = audit or Audit()
        self.sessions = sessions or SessionStore(cfg.session_absolute_s, cfg.session_idle_s)
        self.throttle = throttle or LoginThrottle(user_failures=cfg.lockout_failures,
                                                  address_failures=cfg.address_failures, lockout_s=cfg.lockout_s)
        # bad bearer tokens lock out the address (never a user name), after address_failures of them
        self.token_throttle = LoginThrottle(user_failures=cfg.address_failures, address_failures=cfg.address_failures,
                                            lockout_s=cfg.lockout_s)
        self.hosts = HostPolicy(cfg.allowed_hosts, cfg.allowed_origins, tls=tls)
        self.ward = ward
        self.insecure = cfg.insecure_no_auth
        self.cookie = f"{'__Host-' if tls else ''}pg_{listener}"
        self.kdf_slots = asyncio.Semaphore(2)  # argon2 verifications at once (64 MiB and ~50 ms each)
        self._inflight: Counter[str] = Counter()
        self._changes: dict[str, deque[float]] = {}
        self.refused: Counter[str] = Counter()  # reason -> count, for /metrics

    # -- wiring --------------------------------------------------------------------------------------------
    def install(self, app: web.Application) -> None:
        from .login import LoginRoutes  # login.py builds on this module

        app.middlewares.append(self._outer)
        app.middlewares.append(self._auth)
        app.on_response_prepare.append(headers.on_prepare(self.tls))
        LoginRoutes(self).setup(app)
        if self.oidc is not None:
            app.on_cleanup.append(self._close_oidc)

    async def _close_oidc(self, app: web.Application) -> None:
        if self.oidc is not None:
            await self.oidc.close()

    def rule_for(self, method: str, path: str) -> Rule:
        m = "GET" if method == "HEAD" else method
        for r in self.rules:
            if r.matches(m, path) or r.matches(method, path):
                return r
        return Rule(path, Access.ADMIN)

    def _refuse(self, reason: str, exc: type[web.HTTPException], text: str) -> web.HTTPException:
        self.refused[reason] += 1
        return exc(text=text)

    # -- middleware ----------------------------------------------------------------------------------------
    @web.middleware
    async def _outer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.hosts.host_ok(request):
            raise self._refuse("host", web.HTTPMisdirectedRequest, "this server does not serve that host name")
        client = client_of(request)
        if self._inflight[client] >= self.cfg.requests_per_client:
            raise self._refuse("busy", web.HTTPTooManyRequests, "too many requests at once")
        if request.content_length is not None and request.content_length > self.cfg.max_body_bytes:
            self.refused["body_size"] += 1
            raise web.HTTPRequestEntityTooLarge(max_size=self.cfg.max_body_bytes, actual_size=request.content_length)
        if request.method not in SAFE_METHODS and not self._change_allowed(client):
            raise self._refuse("rate", web.HTTPTooManyRequests, "too many changes: slow down")
        self._inflight[client] += 1
        try:
            return await handler(request)
        finally:
            self._inflight[client] -= 1
            if self._inflight[client] <= 0:
                del self._inflight[client]

    def _change_allowed(self, client: str, now: float | None = None) -> bool:
        """At most ``changes_per_minute`` state changes per client address in any 60 s."""
        now = time.monotonic() if now is None else now
        q = self._changes.get(client)
        if q is None:
            if len(self._changes) > 10_000:  # forget idle addresses
                for k in [k for k, v in self._changes.items() if not v or now - v[-1] > 60.0]:
                    del self._changes[k]
            q = self._changes[client] = deque()
        while q and now - q[0] > 60.0:
            q.popleft()
        if len(q) >= self.cfg.changes_per_minute:
            return False
        q.append(now)
        return True

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        unsafe = request.method not in SAFE_METHODS
        client = client_of(request)
        if unsafe and not self.hosts.origin_ok(request):
            self.audit.record("request", "denied", "-", client, reason="cross-site", path=request.path)
            raise self._refuse("origin", web.HTTPForbidden, "cross-site request refused")
        if self.insecure:
            request[PRINCIPAL] = INSECURE
            return await handler(request)
        r = self.rule_for(request.method, request.path)
        if r.access is Access.PUBLIC:
            return await handler(request)
        principal, session = await self.authenticate(request)
        if principal is None and r.loopback_anonymous and is_loopback(client):
            principal = LOOPBACK_SERVICE
        if principal is None:
            self.refused["anonymous"] += 1
            accept = request.headers.get("Accept", "")
            if request.method == "GET" and "text/html" in accept:
                raise web.HTTPFound("/login?next=" + quote(request.path, safe="/"))
            raise web.HTTPUnauthorized(text="log in first", headers={"WWW-Authenticate": 'Bearer realm="pulsegate"'})
        if not principal.may(r.access):
            self.audit.record("request", "denied", principal.name, client, reason="role", path=request.path,
                              needs=r.access.value)
            raise self._refuse("role", web.HTTPForbidden, f"your role may not do this (needs {r.access.value})")
        if unsafe and session is not None and not self.sessions.csrf_ok(session, request.headers.get(CSRF_HEADER)):
            self.audit.record("request", "denied", principal.name, client, reason="csrf", path=request.path)
            raise self._refuse("csrf", web.HTTPForbidden, "missing or wrong CSRF token")
        request[PRINCIPAL] = principal
        if session is not None:
            request[SESSION] = session
        return await handler(request)

    # -- authentication ----------------------------------------------------------------------------------------
    async def authenticate(self, request: web.Request) -> tuple[Principal | None, Session | None]:
        auth = request.headers.get("Authorization", "")
        if auth:
            return await self._bearer(request, auth), None
        sid = request.cookies.get(self.cookie)
        if not sid:
            return None, None
        session = self.sessions.get(sid)
        if session is None:
            return None, None
        if session.generation:  # a local user: still there, password unchanged? (roles may have changed)
            user = None
            if self.users is not None:
                self.users.reload_if_changed()
                user = self.users.current(session.principal.name, session.generation)
            if user is None:
                self.sessions.delete(sid)
                return None, None
            session.principal = user.principal("session")
        return session.principal, session

    async def _bearer(self, request: web.Request, auth: str) -> Principal | None:
        scheme, _, token = auth.partition(" ")
        client = client_of(request)
        if scheme.lower() != "bearer" or not token or len(token) > 8192:
            return None
        if self.token_throttle.check(client, client) > 0:
            self.refused["locked"] += 1
            return None
        principal: Principal | None = None
        reason = "unknown token"
        if token.startswith("pgt_"):
            if self.users is not None:
                self.users.reload_if_changed()
                user = self.users.verify_token(token)
                principal = user.principal("token") if user is not None else None
        elif self.oidc is not None:
            try:
                principal = await self.oidc.verify_bearer(token)
            except OidcError as exc:
                reason = str(exc)[:200]
        if principal is None:
            locked = self.token_throttle.failure(client, client)
            self.audit.record("token", "failed", "-", client, reason=reason, path=request.path)
            if locked:
                self.audit.record("lockout", "locked", "-", client, scope="address")
        return principal
