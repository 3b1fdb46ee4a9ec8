"""The device sources under the real Supervisor and Pipeline, as the edge daemon will run them."""

from __future__ import annotations

import asyncio

import pytest

from clinical.sample import DeviceEvent, Sample
from edge.pipeline import Pipeline
from firmware_bridge.config import parse_device
from firmware_bridge.emulators.pty import open_pty_emulator
from firmware_bridge.sources import make_source
from runtime.supervisor import Supervisor

pytestmark = pytest.mark.timeout(60)


class Recorder:
    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.events: list[DeviceEvent] = []

    def on_sample(self, sample: Sample) -> None:
        self.samples.append(sample)

    def on_device_event(self, event: DeviceEvent) -> None:
        self.events.append(event)

    def tick(self, now_mono: float, now_wall: float) -> None:
        pass


async def test_three_serial_devices_feed_one_pipeline_under_the_supervisor() -> None:
    emus = {p: open_pty_emulator(p, "desaturation", seed=5, speed=10.0) for p in ("philips", "masimo", "nonin")}
    rec = Recorder()
    pipeline = Pipeline([rec], tick_s=0.05)
    drivers = {"philips": "philips_mib", "masimo": "masimo", "nonin": "nonin_oem3"}
    sources = [
        make_source(parse_device({"driver": drivers[p], "id": f"{p}-1", "bed": f"bed-{i}", "port": e.path}),
                    pipeline.feed, pipeline.feed_event)
        for i, (p, e) in enumerate(emus.items())
    ]
    stop = asyncio.Event()
    sup = Supervisor([pipeline, *sources])
    runner = asyncio.create_task(sup.run(stop, install_signals=False))
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while {s.device for s in rec.samples} != {"philips-1", "masimo-1", "nonin-1"}:
            assert asyncio.get_running_loop().time() < deadline, f"devices seen: {({s.device for s in rec.samples})}"
            await asyncio.sleep(0.1)
        stop.set()
        assert await asyncio.wait_for(runner, 20) == 0
    finally:
        stop.set()
        for e in emus.values():
            e.stop()
    assert sup.restarts == {}
    assert pipeline.samples == len(rec.samples) > 10
    assert {(e.device, e.condition) for e in rec.events if e.active} >= {("philips-1", "connected"),
                                                                      ("masimo-1", "connected"),
                                                                      ("nonin-1", "connected")}
    assert {s.bed for s in rec.samples} == {"bed-0", "bed-1", "bed-2"}
