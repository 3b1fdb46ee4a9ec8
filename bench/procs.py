"""Child processes of the fault tests and benches: `python -m module` with this checkout on the path."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def spawn(module: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m module args`` with this checkout on PYTHONPATH; stdout+stderr to ``log``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("ab") as f:
        return subprocess.Popen([sys.executable, "-m", module, *args], stdout=f, stderr=subprocess.STDOUT, env=env,
                                cwd=REPO)


async def wait_exit(proc: subprocess.Popen[bytes], within_s: float) -> int:
    deadline = time.monotonic() + within_s
    while proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a child process
        await asyncio.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        raise AssertionError(f"process {proc.args!r} did not exit within {within_s}s")
    return proc.returncode


def kill(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGKILL, within_s: float = 15.0) -> None:
    """Send ``sig``; a process still running ``within_s`` later is killed -9."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=within_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects a child printed, one a line (other lines skipped)."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for ln in path.read_text(errors="replace").splitlines():
        if ln.startswith("{"):
            try:
                out.append(json.loads(ln))
            except ValueError:
                pass
    return out
