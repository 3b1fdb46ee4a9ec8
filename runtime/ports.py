"""A listening port that cannot be had is a one-line error naming the port and the setting that sets it.

``await listen(site, host, port, key)`` starts an aiohttp site; when the address is taken (or not
allowed, or not on this machine) it raises :class:`PortInUseError` whose message says which port,
which host, and which config key or command-line flag chooses it, instead of a raw ``OSError``
traceback. ``pulsegate edge run`` / ``cloud run`` print that one line and exit 1; the demo checks its
ports the same way before starting anything.
"""

from __future__ import annotations

import errno
import socket

from aiohttp import web

_WHY = {errno.EADDRINUSE: "is already in use (another process listens there)",
        errno.EACCES: "needs privileges (ports below 1024)",
        errno.EADDRNOTAVAIL: "is not an address of this machine"}


class PortInUseError(RuntimeError):
    """The port of a listener cannot be bound; ``str()`` is the one line to show."""

    def __init__(self, host: str, port: int, key: str, why: str) -> None:
        self.host, self.port, self.key = host, port, key
        super().__init__(f"cannot listen on {host}:{port}: the port {why}; choose another with {key}")


def bind_problem(exc: OSError) -> str | None:
    """Why a bind failed, in words, or None when the error is not about the address."""
    return _WHY.get(exc.errno or 0)


async def listen(runner: web.BaseRunner, site: web.BaseSite, host: str, port: int, key: str) -> None:
    """Start ``site``; on failure clean ``runner`` up and raise (PortInUseError for an address problem)."""
    try:
        await site.start()
    except BaseException as exc:
        await runner.cleanup()
        why = bind_problem(exc) if isinstance(exc, OSError) else None
        if why is None:
            raise
        raise PortInUseError(host, port, key, why) from None


def check_free(host: str, port: int, key: str) -> None:
    """Raise PortInUseError when ``host:port`` (TCP) cannot be bound right now (0 is always free)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            why = bind_problem(exc)
            if why is None:
                raise
            raise PortInUseError(host, port, key, why) from None
