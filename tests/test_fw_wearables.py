"""Wearables via a BLE-to-MQTT bridge: the topic contract against a real mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import paho.mqtt.publish as publish
import pytest

from bench.localservices import Mosquitto
from clinical.sample import Quality
from firmware_bridge.config import parse_device
from firmware_bridge.emulators.scenarios import make_scenario
from firmware_bridge.emulators.wearable import WearablePublisher
from firmware_bridge.mqtt_wearables import WearableMqttSource
from firmware_bridge.sources import make_source
from tests.fw_fixtures import Collector

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def _running(cfg: dict[str, object], col: Collector, wait: bool = True) -> AsyncIterator[WearableMqttSource]:
    src = make_source(parse_device(cfg), col.emit, col.emit_event)
    assert isinstance(src, WearableMqttSource)
    await src.start()
    task = asyncio.create_task(src.run())
    try:
        if wait:
            await asyncio.wait_for(src.subscribed.wait(), 10)
        yield src
    finally:
        await src.stop()
        await asyncio.wait_for(task, 10)


def _cfg(port: int, prefix: str, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {"driver": "wearable_mqtt", "id": "ble-bridge", "host": "127.0.0.1", "port": port,
                               "topic_prefix": prefix, "devices": {"c4-7c-8d-6a-12-34": "bed-9"},
                               "reconnect_initial_s": 0.1, "reconnect_max_s": 0.5}
    base.update(kw)
    return base


async def test_raw_and_json_topics_from_the_emulated_bridge(broker: Mosquitto, unique: str) -> None:
    col = Collector()
    prefix = f"{unique}/ble"
    async with _running(_cfg(broker.port, prefix), col) as src:
        pub = WearablePublisher("127.0.0.1", broker.port, make_scenario("stable", 3),
                                devices=["C4:7C:8D:6A:12:34", "AA:BB:CC:DD:EE:FF"], prefix=prefix,
                                period_s=1.0, speed=10.0).start()
        try:
            await col.wait_for(lambda: {s.parameter for s in col.samples} >= {"heart_rate", "spo2", "temperature"})
        finally:
            pub.stop()
        n = len(col.samples)
        await asyncio.to_thread(publish.single, f"{prefix}/C4-7C-8D-6A-12-34/2a37/json",
                                json.dumps({"hex": "0e4b8000"}), hostname="127.0.0.1", port=broker.port)
        await asyncio.to_thread(publish.single, f"{prefix}/C4-7C-8D-6A-12-34/2a37/json", "{not json",
                                hostname="127.0.0.1", port=broker.port)
        await col.wait_for(lambda: len(col.samples) > n and src.bad_messages >= 1)
        assert src.unknown_devices > 0  # AA:BB:.. is not in the device map
    assert all(s.bed == "bed-9" and s.device == "c4-7c-8d-6a-12-34" for s in col.samples)
    hr = [s for s in col.samples if s.parameter == "heart_rate"]
    assert hr[-1].value == 75
    assert all(s.quality == Quality.VALID for s in col.samples)
    assert any(s.parameter == "rr_interval" and 0.3 < s.value < 2.0 for s in col.samples)
    assert ("connected", True) in col.conditions()


async def test_probe_off_and_silence(broker: Mosquitto, unique: str) -> None:
    col = Collector()
    prefix = f"{unique}/ble"
    async with _running(_cfg(broker.port, prefix, silence_timeout_s=0.5), col):
        pub = WearablePublisher("127.0.0.1", broker.port, make_scenario("probe_off", 1), devices=["C4:7C:8D:6A:12:34"],
                                prefix=prefix, period_s=1.0, speed=20.0, json_form=True).start()
        try:
            await col.wait_for(lambda: ("sensor_off", True) in col.conditions())
            pub.paused = True
            await col.wait_for(lambda: ("silent", True) in col.conditions())
            pub.paused = False
            await col.wait_for(lambda: ("silent", False) in col.conditions())
        finally:
            pub.stop()


async def test_broker_loss_is_a_technical_condition_and_recovers(tmp_path: Path, unique: str) -> None:
    own = Mosquitto(tmp_path / "mosq").start()
    col = Collector()
    prefix = f"{unique}/ble"
    try:
        async with _running(_cfg(own.port, prefix), col) as src:
            own.stop()
            await col.wait_for(lambda: ("disconnected", True) in col.conditions())
            own = Mosquitto(tmp_path / "mosq", port=own.port).start()
            await col.wait_for(lambda: ("disconnected", False) in col.conditions(), within=15)
            await asyncio.wait_for(src.subscribed.wait(), 10)
            await asyncio.to_thread(publish.single, f"{prefix}/c47c8d6a1234/2A5E", bytes.fromhex("0062004800"),
                                    hostname="127.0.0.1", port=own.port)
            await col.wait_for(lambda: [s.value for s in col.samples] == [98.0, 72.0])
            assert src.connects == 2
    finally:
        own.stop()


def test_without_a_device_map_passing_wearables_are_bounded() -> None:
    from firmware_bridge.mqtt_wearables import MAX_UNMAPPED_DEVICES

    got: list[object] = []
    cfg = parse_device({"driver": "wearable_mqtt", "id": "bridge", "bed": "b1", "port": 1883})
    src = make_source(cfg, got.append, got.append)
    for i in range(MAX_UNMAPPED_DEVICES + 10):
        src.handle(f"pulsegate/ble/AA:BB:CC:DD:EE:{i:02X}/2a37", bytes([0x00, 80]), 1.0, 1.0)  # type: ignore[attr-defined]
    assert len(src.decoders) == MAX_UNMAPPED_DEVICES  # type: ignore[attr-defined]
    assert src.unknown_devices == 10  # type: ignore[attr-defined]
