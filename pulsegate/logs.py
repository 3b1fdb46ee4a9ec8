"""Structured JSON logs, one event per line on stdout (journald keeps them).

Use ``log = get_logger("edge.uplink")`` and ``log.info("event_name", bed="3",
backlog=12)``. Fields named like patient identifiers are refused at the
formatter (replaced by "<redacted>") so a mistake cannot leak them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

FORBIDDEN_FIELDS = frozenset({"patient", "patient_id", "mrn", "name", "patient_name", "nhs_number", "dob"})
_context: dict[str, str] = {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "component": record.name,
            "event": record.getMessage(),
        }
        out.update(_context)
        fields = getattr(record, "fields", None)
        if fields:
            for k, v in fields.items():
                out[k] = "<redacted>" if k in FORBIDDEN_FIELDS else v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class Logger:
    """Thin wrapper: keyword arguments become JSON fields."""

    def __init__(self, name: str) -> None:
        self._log = logging.getLogger(name)

    def _emit(self, level: int, event: str, exc: bool, fields: dict[str, Any]) -> None:
        if self._log.isEnabledFor(level):
            self._log.log(level, event, extra={"fields": fields}, exc_info=exc)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, event, False, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, event, False, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, event, False, fields)

    def error(self, event: str, exc: bool = False, **fields: Any) -> None:
        self._emit(logging.ERROR, event, exc, fields)


def get_logger(name: str) -> Logger:
    return Logger(name)


def setup(level: str = "info", **context: str) -> None:
    """Route all logging to stdout as JSON; ``context`` (e.g. gateway) goes on every line."""
    _context.clear()
    _context.update(context)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
