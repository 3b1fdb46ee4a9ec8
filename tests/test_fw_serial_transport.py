"""Emulator -> real pty -> SerialLink -> codec -> Samples; unplug/replug and read-silence for real."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from clinical.sample import Quality
from firmware_bridge.config import parse_device
from firmware_bridge.emulators.pty import PtyEmulator, open_pty_emulator
from firmware_bridge.sources import SerialDeviceSource, make_source
from tests.fw_fixtures import Collector

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def masimo_pty() -> Iterator[PtyEmulator]:
    emu = open_pty_emulator("masimo", "stable", seed=7, speed=20.0)
    yield emu
    emu.stop()


@contextlib.asynccontextmanager
async def _running(cfg: dict[str, object], col: Collector) -> AsyncIterator[SerialDeviceSource]:
    src = make_source(parse_device(cfg), col.emit, col.emit_event)
    assert isinstance(src, SerialDeviceSource)
    await src.start()
    task = asyncio.create_task(src.run())
    try:
        yield src
    finally:
        await src.stop()
        await asyncio.wait_for(task, 5)


def _cfg(emu: PtyEmulator, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {"driver": "masimo", "id": "rad8-3", "bed": "3", "port": emu.path,
                               "reconnect_initial_s": 0.05, "reconnect_max_s": 0.2}
    base.update(kw)
    return base


async def test_masimo_round_trip_through_a_real_pty(masimo_pty: PtyEmulator) -> None:
    col = Collector()
    async with _running(_cfg(masimo_pty), col) as src:
        await col.wait_for(lambda: len(col.samples) >= 30)
        assert src.decoder.stats.bad_frames == 0
    spo2 = [s for s in col.samples if s.parameter == "spo2"]
    assert spo2 and all(s.quality == Quality.VALID and 90 <= s.value <= 100 for s in spo2)
    assert all(s.bed == "3" and s.device == "rad8-3" for s in col.samples)
    assert all(a.recv_mono <= b.recv_mono for a, b in zip(col.samples, col.samples[1:], strict=False))
    assert col.conditions()[0] == ("connected", True)


async def test_unplug_raises_disconnected_and_replug_resumes(masimo_pty: PtyEmulator) -> None:
    col = Collector()
    async with _running(_cfg(masimo_pty), col) as src:
        await col.wait_for(lambda: len(col.samples) >= 6)
        masimo_pty.unplug()
        await col.wait_for(lambda: ("disconnected", True) in col.conditions())
        await asyncio.sleep(0.5)  # several reopen attempts against a vanished path
        n = len(col.samples)
        masimo_pty.replug()
        await col.wait_for(lambda: ("disconnected", False) in col.conditions())
        await col.wait_for(lambda: len(col.samples) >= n + 6)
        assert src.link.opens == 2
    conds = col.conditions()
    assert conds.index(("disconnected", True)) < conds.index(("disconnected", False))
    assert conds.count(("connected", True)) == 2


async def test_device_absent_at_start_is_an_alarm_not_a_crash(tmp_path: pytest.TempPathFactory) -> None:
    col = Collector()
    link = f"{tmp_path}/ttyLATE"
    async with _running({"driver": "masimo", "id": "late", "port": link, "reconnect_initial_s": 0.05,
                                "reconnect_max_s": 0.1}, col):
        await col.wait_for(lambda: ("disconnected", True) in col.conditions())
        emu = open_pty_emulator("masimo", "stable", seed=1, speed=20.0, link=link)
        try:
            await col.wait_for(lambda: len(col.samples) >= 3)
        finally:
            emu.stop()


async def test_read_silence_raises_and_clears_silent(masimo_pty: PtyEmulator) -> None:
    col = Collector()
    async with _running(_cfg(masimo_pty, silence_timeout_s=0.4), col):
        await col.wait_for(lambda: len(col.samples) >= 3)
        masimo_pty.muted = True
        await col.wait_for(lambda: ("silent", True) in col.conditions())
        masimo_pty.muted = False
        await col.wait_for(lambda: ("silent", False) in col.conditions())
    assert ("disconnected", True) not in col.conditions()


async def test_cable_pull_scenario_cycles_through_disconnect() -> None:
    emu = open_pty_emulator("masimo", "cable_pull", seed=2, speed=40.0)  # pulls at t=20..30 s scenario time
    col = Collector()
    try:
        async with _running(_cfg(emu), col):
            await col.wait_for(lambda: ("disconnected", False) in col.conditions(), within=15)
            n = len(col.samples)
            await col.wait_for(lambda: len(col.samples) > n + 3)
    finally:
        emu.stop()


async def test_nonin_round_trip_through_a_real_pty() -> None:
    emu = open_pty_emulator("nonin", "probe_off", seed=4, speed=4.0)  # probe comes off at t=20 s
    col = Collector()
    cfg: dict[str, object] = {"driver": "nonin_oem3", "id": "nonin-5", "bed": "5", "port": emu.path}
    try:
        async with _running(cfg, col) as src:
            await col.wait_for(lambda: ("sensor_off", True) in col.conditions(), within=15)
            assert src.decoder.stats.bad_frames <= 1  # the first read may start mid-frame
    finally:
        emu.stop()
    valid = [s for s in col.samples if s.quality == Quality.VALID]
    assert {s.parameter for s in valid} == {"pulse_rate", "spo2"} and len(valid) >= 10
    assert all(40 <= s.value <= 140 for s in valid if s.parameter == "pulse_rate")
    off = [s for s in col.samples if s.quality & Quality.SENSOR_OFF]
    assert off and all(s.value != s.value for s in off)


async def test_philips_associates_polls_and_reassociates_after_replug() -> None:
    emu = open_pty_emulator("philips", "stable", seed=9, speed=1.0)
    col = Collector()
    cfg: dict[str, object] = {"driver": "philips_mib", "id": "mp50-7", "bed": "7", "port": emu.path,
                              "poll_interval_s": 0.25, "reconnect_initial_s": 0.05, "reconnect_max_s": 0.2}
    try:
        async with _running(cfg, col) as src:
            await col.wait_for(lambda: len({s.parameter for s in col.samples}) == 9)
            monitor = emu.device
            assert getattr(monitor, "associations", 0) == 1
            emu.unplug()
            await col.wait_for(lambda: ("disconnected", True) in col.conditions())
            n = len(col.samples)
            emu.replug()
            await col.wait_for(lambda: len(col.samples) > n + 9)
            assert getattr(monitor, "associations", 0) == 2  # a fresh association after the replug
            assert src.decoder.stats.bad_frames == 0
    finally:
        emu.stop()
    hr = [s for s in col.samples if s.parameter == "heart_rate"]
    assert all(s.quality == Quality.VALID and 40 <= s.value <= 140 and s.device_time for s in hr)
    nibp = {s.parameter: s.value for s in col.samples if s.parameter.startswith("nibp")}
    assert nibp["nibp_sys"] > nibp["nibp_mean"] > nibp["nibp_dia"]
