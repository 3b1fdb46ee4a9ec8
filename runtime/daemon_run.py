"""What `pulsegate edge run` and `pulsegate cloud run` share: load, report, log, run."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from runtime import logs
from runtime.configbase import SecretError
from runtime.configload import ConfigError
from runtime.ports import PortInUseError

C = TypeVar("C")


def run_daemon(
    kind: str,
    path: Path,
    load: Callable[[Path], C],
    log_setup: Callable[[C], None],
    build: Callable[[C, Path], Callable[[], Coroutine[Any, Any, int]]],
) -> int:
    """Exit codes: 2 for a bad config or unreadable secret (no restart helps), 1 when a port cannot be had
    (one line on stderr naming the port and its config key), else the supervisor's."""
    try:
        cfg = load(path)
    except ConfigError as exc:
        print(f"{path}: invalid {kind} config", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    log_setup(cfg)
    try:
        run = build(cfg, path.resolve().parent)
    except (SecretError, ValueError, OSError) as exc:
        logs.get_logger(kind).error("startup_failed", error=str(exc))
        return 2
    try:
        return asyncio.run(run())
    except PortInUseError as exc:  # one line naming the port and its key, never a traceback
        logs.get_logger(kind).error("port_unavailable", host=exc.host, port=exc.port, key=exc.key)
        print(f"pulsegate {kind}: {exc}", file=sys.stderr)
        return 1
