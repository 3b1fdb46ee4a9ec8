"""Local alarm delivery on a real mosquitto: JSON on pulsegate/local/{gw}/alarms/{bed}, latency trail,
bounded queue that never blocks the pipeline, and delivery once a missing broker comes up."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiomqtt
import pytest

from bench.localservices import Mosquitto, free_port
from clinical.alarms.model import AlarmUpdate
from clinical.alarms.profiles import ClinicalConfig
from clinical.sample import Sample
from clinical.stage import ClinicalStage
from edge.alarm_bus import Delivered, LocalAlarmPublisher
from wire.topics import local_alarms

pytestmark = pytest.mark.integration

# these tests are about delivery and the page, with single-threshold alarms (the "bedside" profiles)
BEDSIDE = ClinicalConfig(default_profile="bedside", scale2_profile="bedside-copd")


def tachycardia(stage: ClinicalStage, bed: str, seconds: int = 12) -> None:
    t = time.monotonic() - seconds
    for k in range(seconds + 1):
        stage.on_sample(Sample(bed, "heart_rate", 150.0, "/min", t + k, time.time()))


async def _stop(pub: LocalAlarmPublisher, task: asyncio.Task[None]) -> None:
    await pub.stop()
    await asyncio.wait_for(task, 10)


async def test_alarm_published_as_json_with_latency(broker: Mosquitto, unique: str) -> None:
    delivered: list[Delivered] = []
    pub = LocalAlarmPublisher("127.0.0.1", broker.port, unique, on_delivered=delivered.append)
    stage = ClinicalStage(BEDSIDE, sinks=[pub.offer])
    async with aiomqtt.Client("127.0.0.1", broker.port) as sub:
        await sub.subscribe(f"pulsegate/local/{unique}/alarms/#", qos=1)
        await pub.start()
        task = asyncio.create_task(pub.run())
        tachycardia(stage, "bed-3")
        msg = await asyncio.wait_for(anext(aiter(sub.messages)), 10)
        await _stop(pub, task)
    assert str(msg.topic) == local_alarms(unique, "bed-3")
    body = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
    assert body["event"] == "raised" and body["bed"] == "bed-3" and body["priority"] == "medium"
    assert body["kind"] == "physiological" and body["gateway"] == unique and "patient" not in body
    (d,) = delivered
    a = d.update.alarm
    assert a.delivered_mono is not None and a.recv_mono <= a.raised_mono <= a.delivered_mono
    trail = a.latency_ms()
    assert set(trail) == {"raise", "deliver", "total"} and trail["total"] >= trail["raise"]
    assert pub.published == 1 and pub.dropped == 0


async def test_offer_never_blocks_and_counts_drops(unique: str) -> None:
    pub = LocalAlarmPublisher("127.0.0.1", free_port(), unique, queue_size=2)  # never started
    got: list[AlarmUpdate] = []
    stage = ClinicalStage(BEDSIDE, sinks=[pub.offer, got.append])
    for i in range(5):
        tachycardia(stage, f"bed-{i}")
    assert len(got) == 5 and pub.offered == 5 and pub.queue.qsize() == 2 and pub.dropped == 3
    # the newest updates are the ones kept (the oldest were dropped)
    kept = [pub.queue.get_nowait()[0].alarm.bed for _ in range(2)]
    assert kept == ["bed-3", "bed-4"]


async def test_delivers_when_broker_comes_up_later(tmp_path: Path, unique: str) -> None:
    port = free_port()
    pub = LocalAlarmPublisher("127.0.0.1", port, unique, reconnect_max_s=0.3)
    stage = ClinicalStage(BEDSIDE, sinks=[pub.offer])
    await pub.start()
    task = asyncio.create_task(pub.run())
    tachycardia(stage, "bed-9")
    await asyncio.sleep(0.5)
    assert pub.errors >= 1 and pub.published == 0 and pub.queue.qsize() == 1
    late = Mosquitto(tmp_path / "late", port=port).start()
    try:
        for _ in range(150):  # PUBACK from the real broker once the publisher reconnected
            if pub.published:
                break
            await asyncio.sleep(0.1)
        await _stop(pub, task)
    finally:
        late.stop()
    assert pub.published == 1 and pub.queue.qsize() == 0
    assert stage.manager.get_alarm("bed-9", "heart_rate_high").delivered_mono is not None  # type: ignore[union-attr]


def test_topic_bed_is_a_single_safe_level() -> None:
    from edge.alarm_bus import topic_bed

    assert topic_bed("bed-07") == "bed-07"
    assert topic_bed("ward/3+#") == "ward_3__"
    assert topic_bed("") == "_"
