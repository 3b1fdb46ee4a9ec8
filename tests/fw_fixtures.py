"""Helpers shared by the firmware_bridge tests (tests/test_fw_*.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from clinical.sample import DeviceEvent, Sample
from firmware_bridge.codec import Decoded, Decoder


def feed_all(decoder: Decoder, chunks: Iterable[bytes]) -> list[Decoded]:
    out: list[Decoded] = []
    for i, chunk in enumerate(chunks):
        out.extend(decoder.feed(chunk, float(i), 1_700_000_000.0 + i))
    return out


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def samples(items: Iterable[Decoded]) -> list[Sample]:
    return [x for x in items if isinstance(x, Sample)]


def events(items: Iterable[Decoded]) -> list[DeviceEvent]:
    return [x for x in items if isinstance(x, DeviceEvent)]


@dataclass
class Collector:
    """Receives what a source emits, like the pipeline would."""

    samples: list[Sample] = field(default_factory=list)
    events: list[DeviceEvent] = field(default_factory=list)

    def emit(self, s: Sample) -> None:
        self.samples.append(s)

    def emit_event(self, e: DeviceEvent) -> None:
        self.events.append(e)

    def conditions(self) -> list[tuple[str, bool]]:
        return [(e.condition, e.active) for e in self.events]

    async def wait_for(self, pred: Callable[[], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out; {len(self.samples)} samples, events {self.conditions()}"
                )
            await asyncio.sleep(0.02)
