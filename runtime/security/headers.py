"""The security headers every PulseGate response carries.

The CSP allows scripts and styles only from the listener itself (no inline
script: an injected ``<script>`` does not run), no framing at all
(``frame-ancestors 'none'``: the Acknowledge button cannot be clickjacked),
and connections only back to the same origin (WebSockets included). HSTS is
sent only over TLS (a browser ignores it on plain HTTP anyway).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
BASE = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000"


def add(resp: web.StreamResponse, tls: bool) -> None:
    for k, v in BASE.items():
        resp.headers.setdefault(k, v)
    if tls:
        resp.headers.setdefault("Strict-Transport-Security", HSTS)
    if "json" in resp.headers.get("Content-Type", ""):
        resp.headers.setdefault("Cache-Control", "no-store")


def on_prepare(tls: bool) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An ``app.on_response_prepare`` hook: every response gets the headers (errors, streams, WebSockets)."""

    async def hook(request: web.Request, resp: web.StreamResponse) -> None:
        add(resp, tls)

    return hook
