"""Host and Origin checks: DNS rebinding and cross-site requests.

A browser tricked by DNS rebinding sends the attacker's name in ``Host``; a
page on another site that POSTs or opens a WebSocket here sends its own
``Origin``. Served Host values are: any IP literal (rebinding needs a name),
``localhost``, this machine's host names and the configured ``allowed_hosts``.
An allowed Origin is this listener's own (scheme + Host) or a configured one.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from aiohttp import web

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def split_host(host: str) -> str:
    """The name or address in a Host header value, without the port, lower-case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    def __init__(self, allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = (), *,
                 tls: bool = False) -> None:
        names = {h.lower().rstrip(".") for h in allowed_hosts} | {"localhost"}
        for local in (socket.gethostname(), socket.getfqdn()):
            if local:
                names.add(local.lower())
        self.names = frozenset(names)
        self.origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self.tls = tls
        self.refused_hosts = 0
        self.refused_origins = 0

    def host_ok(self, request: web.Request) -> bool:
        raw = request.headers.get("Host")
        if not raw:
            return False
        name = split_host(raw).rstrip(".")
        ok = _is_ip(name) or name in self.names
        if not ok:
            self.refused_hosts += 1
        return ok

    def own_origin(self, request: web.Request) -> str:
        return f"{'https' if self.tls else 'http'}://{request.headers.get('Host', '').lower()}"

    def origin_ok(self, request: web.Request, *, required: bool = False) -> bool:
        """True for a same-origin (or configured) request. Without Origin: refused when ``required``
        (WebSockets: browsers always send it), else judged by Sec-Fetch-Site (absent for non-browsers)."""
        origin = request.headers.get("Origin")
        if origin is None:
            ok = not required and request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
        else:
            o = origin.rstrip("/").lower()
            ok = o != "null" and (o == self.own_origin(request) or o in self.origins)
        if not ok:
            self.refused_origins += 1
        return ok
