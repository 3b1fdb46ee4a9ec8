"""Everything one HTTP listener needs to be safe, built from its TOML sections in one call.

    sec = secure_listener("nurse", cfg.http.listen, cfg.auth, cfg.http.tls, NURSE_RULES,
                          users_file=state_dir / "users.json", ward=cfg.gateway.site)
    sec.install(app)                                   # middlewares, headers, login routes
    runner = web.AppRunner(app, **sec.runner_kwargs()) # aiohttp's logger and limits
    site = web.TCPSite(runner, host, port, ssl_context=sec.ssl)

It refuses to build a listener that may not start (``policy.check_listener``).
Authentication is on unless ``insecure_no_auth``: with no users file yet,
nobody can log in until ``pulsegate user add`` makes one (said once at start).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from runtime.configbase import read_optional_secret
from runtime.logs import get_logger
from runtime.metrics import CallbackCollector

from .audit import Audit
from .config import AuthSection, TlsSection
from .guard import Guard, Rule
from .httplog import ServerLog, runner_kwargs
from .oidc import OidcProvider
from .policy import check_listener
from .tls import server_context
from .users import UserStore
from .websocket import WsGate

log = get_logger("security")


@dataclass
class ListenerSecurity:
    guard: Guard
    ws: WsGate
    ssl: ssl.SSLContext | None
    server_log: ServerLog

    def install(self, app: web.Application) -> None:
        self.guard.install(app)

    def runner_kwargs(self) -> dict[str, Any]:
        return runner_kwargs(self.server_log)

    @property
    def scheme(self) -> str:
        return "https" if self.ssl is not None else "http"


def register_metrics(collector: CallbackCollector, audit: Audit, *listeners: ListenerSecurity) -> None:
    """Audit events and refusals on /metrics (one Audit shared by a daemon's listeners)."""
    collector.counter("pulsegate_audit_events", "Security audit events (logins, lockouts, refusals, actions)",
                      audit.reading, labels=("action", "outcome"))

    def refused() -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for sec in listeners:
            for reason, n in (sec.guard.refused + sec.ws.refused).items():
                out[(sec.guard.listener, reason)] = out.get((sec.guard.listener, reason), 0.0) + n
            for kind, n in sec.server_log.client_errors.items():
                out[(sec.guard.listener, "malformed:" + kind)] = float(n)
        return out

    collector.counter("pulsegate_http_refused", "HTTP requests refused by the guard or the parser",
                      refused, labels=("listener", "reason"))
    collector.gauge("pulsegate_sessions", "Live login sessions",
                    lambda: {(sec.guard.listener,): float(len(sec.guard.sessions)) for sec in listeners},
                    labels=("listener",))


def secure_listener(name: str, host: str, auth: AuthSection, tls: TlsSection | None, rules: Sequence[Rule], *,
                    users_file: Path | None = None, ward: str | None = None, base: Path | None = None,
                    audit: Audit | None = None, users: UserStore | None = None) -> ListenerSecurity:
    """Build the guard, TLS context and gates of listener ``name``; ValueError when it may not start."""
    ctx = server_context(tls.cert, tls.key, base) if tls is not None else None
    check_listener(name, host, auth=not auth.insecure_no_auth, tls=ctx is not None,
                   insecure_no_auth=auth.insecure_no_auth)
    path = auth.users_file or users_file
    if auth.insecure_no_auth:
        users = None
    elif users is None and path is not None:
        users = UserStore(path)
    if users is not None and not users.users and auth.oidc is None:
        log.warning("no_users", listener=name, users_file=str(users.path),
                    hint="nobody can log in: pulsegate user add NAME --role nurse --users-file FILE")
    oidc = None
    if auth.oidc is not None and not auth.insecure_no_auth:
        oidc = OidcProvider(auth.oidc, read_optional_secret(auth.oidc.client_secret, base))
    audit = audit or Audit()
    guard = Guard(auth, listener=name, tls=ctx is not None, rules=rules, users=users, oidc=oidc, audit=audit,
                  ward=ward or auth.ward)
    ws = WsGate(guard.hosts, audit, per_client=auth.ws_per_client, max_frame_bytes=auth.ws_max_frame_bytes)
    log.info("listener_security", listener=name, tls=ctx is not None, local_users=users is not None,
             oidc=oidc is not None, insecure=auth.insecure_no_auth)
    return ListenerSecurity(guard, ws, ctx, ServerLog(f"http.{name}"))
