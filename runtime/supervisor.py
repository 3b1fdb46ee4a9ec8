"""One supervisor per daemon.

Components come in tiers: sinks (uplink, local bus, web server) start first,
then the pipeline, then sources (devices). On stop the order reverses: sources
stop first, the pipeline drains, sinks go last. A component that crashes is
restarted with exponential backoff at most ``max_restarts`` times in
``window_s``; past that the supervisor stops everything and the daemon exits
non-zero so that systemd (Restart=on-failure) takes over. Components marked
``essential = False`` (the uplink, model slots, devices, the video room) are
instead retried forever at the longest backoff: a missing TLS file or a broken
device must not take the pipeline and the local alarms down with it.

The systemd watchdog is fed only while :class:`Progress` advances: the
pipeline beats it on every tick, so a wedged loop or a dead pipeline stops the
pings and systemd restarts the unit.
"""

from __future__ import annotations

import asyncio
import enum
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from runtime.logs import get_logger
from runtime.sdnotify import Notifier, watchdog_interval

log = get_logger("supervisor")


class Tier(enum.IntEnum):
    SINK = 0
    PIPELINE = 1
    SOURCE = 2


class Component(Protocol):
    """``essential = False`` (class attribute, optional) marks a component whose repeated crashes must not stop
    the daemon: it is retried forever at the longest backoff. Essential by default."""

    name: str
    tier: Tier

    async def start(self) -> None:
        """Set up (connect, open, bind). Returns when the component is usable."""

    async def run(self) -> None:
        """Work until stop() is called (then return) or fail (raise)."""

    async def stop(self) -> None:
        """Ask run() to finish: drain what is buffered and return."""


class Progress:
    """A counter the pipeline advances; the watchdog feeds systemd only if it moved."""

    def __init__(self) -> None:
        self.count = 0
        self.last = time.monotonic()

    def beat(self) -> None:
        self.count += 1
        self.last = time.monotonic()


@dataclass
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0


class ComponentFailed(RuntimeError):
    pass


@dataclass
class Supervisor:
    components: list[Component]
    progress: Progress = field(default_factory=Progress)
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    notifier: Notifier = field(default_factory=Notifier)
    stop_timeout_s: float = 15.0
    restarts: dict[str, int] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event | None = None, install_signals: bool = True) -> int:
        """Run until ``stop`` is set or SIGTERM/SIGINT; 0 on a clean stop, 1 on failure."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        failed = asyncio.Event()
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            for tier in Tier:
                for comp in (c for c in self.components if c.tier == tier):
                    await comp.start()
                    tasks[comp.name] = asyncio.create_task(
                        self._guard(comp, failed), name=f"pulsegate[{comp.name}]"
                    )
                    log.info("component_started", task=comp.name, tier=tier.name.lower())
            self.notifier.ready("running")
            wd = asyncio.create_task(self._watchdog(), name="pulsegate[watchdog]")
            stop_wait = asyncio.create_task(stop.wait())
            fail_wait = asyncio.create_task(failed.wait())
            await asyncio.wait({stop_wait, fail_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            fail_wait.cancel()
            wd.cancel()
        finally:
            self.notifier.stopping()
            await self._shutdown(tasks)
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        return 1 if failed.is_set() else 0

    async def _shutdown(self, tasks: dict[str, asyncio.Task[None]]) -> None:
        for tier in reversed(Tier):
            tier_comps = [c for c in self.components if c.tier == tier and c.name in tasks]
            for comp in tier_comps:
                try:
                    await comp.stop()
                except Exception:
                    log.error("component_stop_failed", exc=True, task=comp.name)
            pending = [tasks[c.name] for c in tier_comps]
            if not pending:
                continue
            _, still = await asyncio.wait(pending, timeout=self.stop_timeout_s)
            for t in still:
                log.warning("component_stop_timeout", task=t.get_name())
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            log.info("tier_stopped", tier=tier.name.lower())

    async def _guard(self, comp: Component, failed: asyncio.Event) -> None:
        crashes: deque[float] = deque()
        backoff = self.policy.backoff_initial_s
        while True:
            try:
                await comp.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                now = time.monotonic()
                crashes.append(now)
                while crashes and now - crashes[0] > self.policy.window_s:
                    crashes.popleft()
                self.restarts[comp.name] = self.restarts.get(comp.name, 0) + 1
                if len(crashes) > self.policy.max_restarts:
                    if getattr(comp, "essential", True):
                        log.error("component_failed", task=comp.name, error=repr(exc), restarts=len(crashes) - 1)
                        failed.set()
                        return
                    # a broken uplink, device or video room must not take the bedside alarms down with it:
                    # it keeps retrying at the longest backoff and stays visible in the logs and metrics
                    backoff = self.policy.backoff_max_s
                log.error("component_crashed", exc=True, task=comp.name, retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.policy.backoff_max_s)
                try:
                    await comp.start()
                except Exception:
                    log.error("component_restart_failed", exc=True, task=comp.name)

    async def _watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None or not self.notifier.enabled:
            return
        seen = -1
        while True:
            await asyncio.sleep(interval)
            if self.progress.count != seen:
                seen = self.progress.count
                self.notifier.watchdog()
            else:
                log.warning("watchdog_withheld", stalled_s=round(time.monotonic() - self.progress.last, 1))
