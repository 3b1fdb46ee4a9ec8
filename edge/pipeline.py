"""The gateway's in-process pipeline: sources call feed()/feed_event() directly.

There is no queue between a device frame and the clinical logic: a transport
decodes bytes into Samples and calls :meth:`Pipeline.feed` on the event loop,
which hands each Sample to every stage in order (per-bed state and alarms
first, summaries after). Stages must be quick and never wait on network or
disk; anything slow (uplink, outbox writes) is handed off to its own task.

A periodic :meth:`Pipeline.run` tick drives time-based logic (alarm delays,
escalation, stale data, summary intervals) and beats the watchdog.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol

from clinical.sample import DeviceEvent, Sample
from runtime.logs import get_logger
from runtime.supervisor import Progress, Tier

log = get_logger("edge.pipeline")


class Stage(Protocol):
    def on_sample(self, sample: Sample) -> None: ...

    def on_device_event(self, event: DeviceEvent) -> None: ...

    def tick(self, now_mono: float, now_wall: float) -> None: ...


class Pipeline:
    name = "pipeline"
    tier = Tier.PIPELINE

    def __init__(self, stages: list[Stage], progress: Progress | None = None, tick_s: float = 0.25) -> None:
        self.stages = list(stages)
        self.progress = progress or Progress()
        self.tick_s = tick_s
        self.samples = 0
        self.events = 0
        self.stage_errors = 0
        self._last_error_log: dict[str, float] = {}
        self._stop = asyncio.Event()

    def feed(self, sample: Sample) -> None:
        self.samples += 1
        for stage in self.stages:
            try:
                stage.on_sample(sample)
            except Exception:  # one stage's bug must not cost the source, or the next stages, this sample
                self._stage_failed(stage, "on_sample")

    def feed_event(self, event: DeviceEvent) -> None:
        self.events += 1
        for stage in self.stages:
            try:
                stage.on_device_event(event)
            except Exception:
                self._stage_failed(stage, "on_device_event")

    def tick(self) -> None:
        now_mono, now_wall = time.monotonic(), time.time()
        for stage in self.stages:
            try:
                stage.tick(now_mono, now_wall)
            except Exception:
                self._stage_failed(stage, "tick")
        self.progress.beat()

    def _stage_failed(self, stage: Stage, where: str) -> None:
        """Counted always; logged with its traceback at most once a minute per stage, so a bug cannot flood logs."""
        self.stage_errors += 1
        name = type(stage).__name__
        now = time.monotonic()
        if now - self._last_error_log.get(name, -math.inf) >= 60.0:
            self._last_error_log[name] = now
            log.error("stage_error", exc=True, stage=name, where=where, errors_total=self.stage_errors)

    async def start(self) -> None:
        self._stop.clear()

    async def run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            try:
                await asyncio.wait_for(self._stop.wait(), self.tick_s)
            except TimeoutError:
                pass
        self.tick()
        for stage in self.stages:  # drain: partial intervals go out before the sinks stop
            flush = getattr(stage, "flush", None)
            if flush is not None:
                flush()

    async def stop(self) -> None:
        self._stop.set()
