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
import time
from typing import Protocol

from pulsegate.supervisor import Progress, Tier
from wire.sample import DeviceEvent, Sample


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
        self._stop = asyncio.Event()

    def feed(self, sample: Sample) -> None:
        self.samples += 1
        for stage in self.stages:
            stage.on_sample(sample)

    def feed_event(self, event: DeviceEvent) -> None:
        self.events += 1
        for stage in self.stages:
            stage.on_device_event(event)

    def tick(self) -> None:
        now_mono, now_wall = time.monotonic(), time.time()
        for stage in self.stages:
            stage.tick(now_mono, now_wall)
        self.progress.beat()

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
