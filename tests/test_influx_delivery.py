"""Unit tests of the InfluxDB error policy against a scripted fake writer (the real server: test_influx.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from cloud.delivery import Delivery, DeliveryAborted
from cloud.influx import InfluxWriter, WriteResponse


class FakeWriter(InfluxWriter):
    """Answers each write with ``policy(lines)``; records every request."""

    def __init__(self, policy: Callable[[list[str]], WriteResponse]) -> None:
        super().__init__("http://127.0.0.1:9", "db")
        self.policy = policy
        self.calls: list[list[str]] = []
        self.stored: list[str] = []

    async def write(self, lines: list[str]) -> WriteResponse:
        self.calls.append(list(lines))
        resp = self.policy(lines)
        if resp.ok:
            self.stored.extend(lines)
        return resp

    async def create_database(self) -> None:
        self.calls.append(["CREATE DATABASE"])


LINES = [f"m v={i}i {i}" for i in range(100)]


async def test_413_splits_until_batches_fit() -> None:
    fake = FakeWriter(lambda lines: WriteResponse(413, "too large") if len(lines) > 30 else WriteResponse(204))
    d = Delivery(fake)
    assert await d.deliver(LINES) == []
    assert sorted(fake.stored) == sorted(LINES) and len(fake.stored) == 100
    accepted = [c for c in fake.calls if len(c) <= 30]
    assert sum(map(len, accepted)) == 100  # every line landed in exactly one accepted request
    assert d.splits >= 3 and d.written == 100


async def test_400_bisects_to_the_bad_points_and_rejects_only_them() -> None:
    bad = {LINES[17], LINES[64]}

    def policy(lines: list[str]) -> WriteResponse:
        if bad & set(lines):
            return WriteResponse(400, '{"error":"partial write: field type conflict dropped=1"}')
        return WriteResponse(204)

    fake = FakeWriter(policy)
    rejected = await Delivery(fake).deliver(LINES)
    assert {r.line for r in rejected} == bad and all(r.status == 400 for r in rejected)
    assert set(fake.stored) == set(LINES) - bad


async def test_422_is_treated_like_400() -> None:
    fake = FakeWriter(lambda lines: WriteResponse(422, "unprocessable") if LINES[3] in lines else WriteResponse(204))
    rejected = await Delivery(fake).deliver(LINES[:8])
    assert [r.line for r in rejected] == [LINES[3]]


async def test_429_honours_retry_after_then_succeeds() -> None:
    answers = [WriteResponse(429, "slow down", retry_after_s=0.3), WriteResponse(204)]
    fake = FakeWriter(lambda lines: answers.pop(0))
    d = Delivery(fake, backoff_min_s=0.01)
    began = time.monotonic()
    assert await d.deliver(LINES) == []
    assert time.monotonic() - began >= 0.3  # waited at least what the server asked for
    assert d.retries["429"] == 1 and len(fake.stored) == 100


@pytest.mark.parametrize("status", [0, 500, 503, 401])
async def test_transient_errors_are_retried_without_dropping(status: int) -> None:
    answers = [WriteResponse(status, "down")] * 3 + [WriteResponse(204)]
    fake = FakeWriter(lambda lines: answers.pop(0))
    d = Delivery(fake, backoff_min_s=0.01, backoff_max_s=0.02)
    assert await d.deliver(LINES) == []
    assert len(fake.calls) == 4 and fake.calls[-1] == LINES and len(fake.stored) == 100
    assert sum(d.retries.values()) == 3


async def test_missing_database_is_created_then_written() -> None:
    answers = [WriteResponse(404, '{"error":"database not found: \\"db\\""}'), WriteResponse(204)]
    fake = FakeWriter(lambda lines: answers.pop(0))
    assert await Delivery(fake).deliver(LINES) == []
    assert fake.calls[1] == ["CREATE DATABASE"] and len(fake.stored) == 100


async def test_stop_aborts_a_retrying_delivery_without_success() -> None:
    fake = FakeWriter(lambda lines: WriteResponse(0, "connection refused"))
    d = Delivery(fake, backoff_min_s=0.05, backoff_max_s=0.05)
    task = asyncio.create_task(d.deliver(LINES))
    await asyncio.sleep(0.3)
    d.stop.set()
    with pytest.raises(DeliveryAborted):
        await task
    assert fake.stored == [] and d.written == 0


async def test_connection_refused_on_a_real_closed_port_is_status_0() -> None:
    from bench.localservices import free_port

    w = InfluxWriter(f"http://127.0.0.1:{free_port()}", "db", timeout_s=2)
    resp = await w.write(LINES[:1])
    await w.close()
    assert resp.status == 0 and not resp.ok
