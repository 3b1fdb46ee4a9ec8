"""Structured JSON logs, one event per line on stdout (journald keeps them).

Use ``log = get_logger("edge.uplink")`` and ``log.info("event_name", bed="3",
backlog=12)``. Fields named like patient identifiers are refused at the
formatter (replaced by "<redacted>") so a mistake cannot leak them.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
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
        elif record.exc_text:
            out["exc"] = record.exc_text
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


class _PreparedQueueHandler(logging.handlers.QueueHandler):
    """Keeps the record as it is (fields, exc_info) for the JSON formatter in the listener thread."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)  # the traceback, taken now
        record.exc_info = None if record.exc_text else record.exc_info
        return record


def get_logger(name: str) -> Logger:
    return Logger(name)


_listener: logging.handlers.QueueListener | None = None


def setup(level: str = "info", **context: str) -> None:
    """Route all logging to stdout as JSON; ``context`` (e.g. gateway) goes on every line.

    The event loop only puts records on a queue; a listener thread formats and writes them, so a slow
    stdout (a busy journald, a full pipe) never stalls the path to a local alarm. Flushed at exit.
    """
    global _listener
    _context.clear()
    _context.update(context)
    if _listener is not None:
        _listener.stop()
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, stream, respect_handler_level=False)
    _listener.start()
    atexit.register(_listener.stop)
    root = logging.getLogger()
    root.handlers[:] = [_PreparedQueueHandler(records)]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
