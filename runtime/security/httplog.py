"""What aiohttp's server logs, made fit for a hostile network.

aiohttp logs every malformed request (an oversized URL or header, garbage on
the port) with a full traceback at error level, so anyone can flood the
journal. ``ServerLog`` replaces its logger: a client error (a 4xx raised while
parsing) is counted per kind and logged as one warning line without a
traceback, the first time and then at most once a minute with the count so
far; a real server error keeps its traceback, at most one a second.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from runtime.logs import get_logger

log = get_logger("http.server")
_std = logging.getLogger("http.server")

MAX_LINE = 8190
MAX_FIELD = 8190


class ServerLog(logging.Logger):
    def __init__(self, name: str = "http.server", warn_every_s: float = 60.0) -> None:
        super().__init__(name)
        self.parent = logging.getLogger()
        self.warn_every_s = warn_every_s
        self.client_errors: Counter[str] = Counter()
        self.server_errors = 0
        self._last_warn: dict[str, float] = {}
        self._last_error = 0.0

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
            self.client_error(type(exc).__name__, exc.code or 400)
            return
        self.server_errors += 1
        now = time.monotonic()
        if now - self._last_error >= 1.0:
            self._last_error = now
            fields = {"kind": type(exc).__name__ if exc else "unknown", "total": self.server_errors}
            _std.error("http_server_error", exc_info=exc_info, extra={"fields": fields})

    def client_error(self, kind: str, status: int) -> None:
        self.client_errors[kind] += 1
        now = time.monotonic()
        last = self._last_warn.get(kind)
        if last is None or now - last >= self.warn_every_s:
            self._last_warn[kind] = now
            log.warning("http_client_error", kind=kind, status=status, count=self.client_errors[kind])

    def reading(self) -> dict[tuple[str, ...], float]:
        return {(k,): float(v) for k, v in self.client_errors.items()}


def runner_kwargs(server_log: ServerLog) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner``: our logger and aiohttp's own line and header limits."""
    return {"logger": server_log, "max_line_size": MAX_LINE, "max_field_size": MAX_FIELD, "access_log": None}
