"""Deliver one batch of line-protocol points to InfluxDB under the error policy.

After telegraf's outputs (models/buffer.go, plugins/outputs/influxdb):

* 204: accepted.
* 413 (body too large): split the batch in halves and deliver each.
* 400 / 422 (bad points, incl. ``partial write: field type conflict``): bisect
  until the offending lines are isolated; those go to the dead-letter store and
  are counted, the good ones are written (rewriting a good point is harmless:
  points are idempotent).
* 429 / 5xx / 401 / 403 / connection refused / timeout: back off with full
  jitter (honouring ``Retry-After``) and retry the same batch until it is
  accepted or the worker stops. Nothing is acknowledged meanwhile.
* 404 (database not found): create it, then retry (v2: a missing bucket is
  the operator's to create; back off and retry).
* A 400 that is an authentication refusal (``auth`` in the body: a token
  proxy such as vmauth answers a wrong token with 400) is treated as 401,
  never as bad points.

:meth:`Delivery.deliver` returns only when every line is either written or
dead-lettered; it raises :class:`DeliveryAborted` if asked to stop first.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from cloud.influx import InfluxError, LineWriter, WriteResponse
from runtime.logs import get_logger

log = get_logger("cloud.delivery")


class DeliveryAborted(RuntimeError):
    """Stopped before the batch was accepted: acknowledge nothing."""


@dataclass
class Rejected:
    line: str
    status: int
    reason: str


@dataclass
class Delivery:
    writer: LineWriter
    backoff_min_s: float = 0.2
    backoff_max_s: float = 30.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    # counters
    written: int = 0
    requests: int = 0
    splits: int = 0
    rejected: int = 0
    retries: Counter[str] = field(default_factory=Counter)

    async def deliver(self, lines: list[str]) -> list[Rejected]:
        """Write ``lines``; returns the lines InfluxDB refused for good (to be dead-lettered)."""
        rejected: list[Rejected] = []
        if lines:
            await self._deliver(lines, rejected)
        self.rejected += len(rejected)
        return rejected

    async def _deliver(self, lines: list[str], rejected: list[Rejected]) -> None:
        delay = self.backoff_min_s
        while True:
            if self.stop.is_set():
                raise DeliveryAborted("stopping")
            resp = await self.writer.write(lines)
            self.requests += 1
            if resp.ok:
                self.written += len(lines)
                return
            if (resp.status == 413 or resp.status in (400, 422)) and not _auth_refused(resp):
                if len(lines) == 1:
                    rejected.append(Rejected(lines[0], resp.status, resp.body[:500]))
                    log.warning("influx_point_rejected", status=resp.status, reason=resp.body[:200])
                    return
                self.splits += 1
                mid = len(lines) // 2
                await self._deliver(lines[:mid], rejected)
                await self._deliver(lines[mid:], rejected)
                return
            if resp.status == 404 and "database not found" in resp.body:
                try:
                    await self.writer.create_database()
                    continue
                except InfluxError as exc:
                    log.warning("influx_create_database_failed", error=str(exc)[:200])
            delay = await self._backoff(resp, delay)

    async def _backoff(self, resp: WriteResponse, delay: float) -> float:
        key = "connection" if resp.status == 0 else str(resp.status)
        self.retries[key] += 1
        wait = random.uniform(0, delay)  # full jitter
        if resp.retry_after_s is not None:
            wait = max(wait, resp.retry_after_s)
        if self.retries[key] % 10 == 1:
            log.warning("influx_write_retry", status=resp.status, wait_s=round(wait, 2), detail=resp.body[:200])
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=wait)
        except TimeoutError:
            pass
        return min(delay * 2, self.backoff_max_s)


def _auth_refused(resp: WriteResponse) -> bool:
    return resp.status == 400 and "auth" in resp.body.lower() and "partial write" not in resp.body
