"""Supervisor order, restart policy, clean stop; sd_notify over a real socket."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from runtime.sdnotify import Notifier, watchdog_interval
from runtime.supervisor import Progress, RestartPolicy, Supervisor, Tier


class Comp:
    def __init__(self, name: str, tier: Tier, log: list[str], crash_times: int = 0) -> None:
        self.name, self.tier, self.log = name, tier, log
        self.crash_times = crash_times
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def run(self) -> None:
        if self.crash_times:
            self.crash_times -= 1
            raise RuntimeError("boom")
        await self._stop.wait()
        self.log.append(f"drained {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        self._stop.set()


async def test_sinks_first_sources_stop_first() -> None:
    log: list[str] = []
    comps = [Comp("src", Tier.SOURCE, log), Comp("sink", Tier.SINK, log), Comp("pipe", Tier.PIPELINE, log)]
    stop = asyncio.Event()
    sup = Supervisor(comps, notifier=Notifier(""))  # type: ignore[arg-type]
    task = asyncio.create_task(sup.run(stop, install_signals=False))
    await asyncio.sleep(0.05)
    stop.set()
    assert await task == 0
    assert log[:3] == ["start sink", "start pipe", "start src"]
    assert log.index("drained src") < log.index("stop pipe") < log.index("drained pipe") < log.index("stop sink")


async def test_crash_restarts_then_recovers() -> None:
    log: list[str] = []
    c = Comp("flaky", Tier.SOURCE, log, crash_times=2)
    stop = asyncio.Event()
    sup = Supervisor([c], policy=RestartPolicy(max_restarts=3, backoff_initial_s=0.01), notifier=Notifier(""))  # type: ignore[list-item]
    task = asyncio.create_task(sup.run(stop, install_signals=False))
    await asyncio.sleep(0.2)
    assert sup.restarts["flaky"] == 2
    stop.set()
    assert await task == 0


async def test_too_many_crashes_exit_nonzero() -> None:
    log: list[str] = []
    c = Comp("dead", Tier.SOURCE, log, crash_times=100)
    sup = Supervisor([c], policy=RestartPolicy(max_restarts=2, backoff_initial_s=0.01), notifier=Notifier(""))  # type: ignore[list-item]
    assert await asyncio.wait_for(sup.run(asyncio.Event(), install_signals=False), 5) == 1
    assert sup.restarts["dead"] == 3


async def test_watchdog_fed_only_while_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.setblocking(False)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # ping every 50 ms
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == pytest.approx(0.05)
    progress = Progress()
    stop = asyncio.Event()
    sup = Supervisor([], progress=progress, notifier=Notifier(path))

    async def beat_for(seconds: float) -> None:
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            progress.beat()
            await asyncio.sleep(0.01)

    def drain() -> list[bytes]:
        out = []
        while True:
            try:
                out.append(server.recv(4096))
            except BlockingIOError:
                return out

    task = asyncio.create_task(sup.run(stop, install_signals=False))
    await beat_for(0.4)
    beating = drain()
    await asyncio.sleep(0.4)  # pipeline stalls: no beats
    stalled = drain()
    stop.set()
    await task
    after = drain()
    server.close()
    assert beating[0].startswith(b"READY=1")
    assert beating.count(b"WATCHDOG=1") >= 4
    assert stalled.count(b"WATCHDOG=1") <= 1  # at most the ping for the last beat before the stall
    assert b"STOPPING=1" in after


def test_notifier_disabled_without_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled and not n.ready()


async def test_non_essential_component_never_stops_the_daemon() -> None:
    log: list[str] = []
    flaky = Comp("uplink", Tier.SINK, log, crash_times=100)
    flaky.essential = False  # type: ignore[attr-defined]
    steady = Comp("pipeline", Tier.PIPELINE, log)
    stop = asyncio.Event()
    sup = Supervisor([flaky, steady], policy=RestartPolicy(max_restarts=2, backoff_initial_s=0.01, backoff_max_s=0.02),
                     notifier=Notifier(""))  # type: ignore[list-item]
    task = asyncio.create_task(sup.run(stop, install_signals=False))
    await asyncio.sleep(0.5)
    assert not task.done() and sup.restarts["uplink"] > 3  # still retrying, daemon still up
    stop.set()
    assert await task == 0
