"""Small asyncio helpers shared by components."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Future[object] | asyncio.Task[None]]) -> None:
    """Cancel every task and wait for each to finish; their errors (already logged by them) are dropped."""
    pending = list(tasks)
    for t in pending:
        t.cancel()
    for t in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
