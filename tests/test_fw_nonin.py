"""Nonin OEM III codec: the sync frame vector, 9-bit HR, sentinels, status bits, fuzzing."""

from __future__ import annotations

import math
from collections.abc import Iterable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinical.sample import Quality
from firmware_bridge.codec import Decoded
from firmware_bridge.emulators.nonin import NoninEmulator
from firmware_bridge.emulators.scenarios import make_scenario
from firmware_bridge.nonin import (
    MISSING_HR,
    MISSING_SPO2,
    ST_ARTF,
    ST_SNSA,
    ST_SNSD,
    NoninDecoder,
    frame,
    packet,
)
from tests.fw_fixtures import chunked, events, feed_all, samples

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _values(items: Iterable[Decoded]) -> list[tuple[str, float]]:
    return [(s.parameter, s.value) for s in samples(items)]


def test_reference_sync_frame() -> None:
    assert frame(0x81, 0x80, 0x00) == bytes.fromhex("0181800002")
    assert packet(0, 0)[:5] == bytes.fromhex("0181800002")


def test_packet_decodes_with_nine_bit_heart_rate() -> None:
    d = NoninDecoder("4", "nonin-4")
    out = samples(d.feed(packet(300, 96), 1.0, 2.0))
    assert [(s.parameter, s.value, s.unit) for s in out] == [("pulse_rate", 300.0, "/min"), ("spo2", 96.0, "%")]
    assert all(s.quality == Quality.VALID and s.bed == "4" and s.device == "nonin-4" for s in out)
    assert d.stats.frames == 25 and d.stats.bad_frames == 0 and d.packets == 1


def test_missing_value_sentinels_are_nan() -> None:
    out = samples(NoninDecoder().feed(packet(MISSING_HR, MISSING_SPO2), 0, 0))
    assert all(math.isnan(s.value) and s.quality & Quality.UNAVAILABLE for s in out)


def test_sensor_disconnect_is_a_technical_condition() -> None:
    d = NoninDecoder()
    out = d.feed(packet(80, 97, ST_SNSD), 0, 0)
    assert [(e.condition, e.active) for e in events(out)] == [("sensor_off", True)]
    assert all(math.isnan(s.value) and s.quality & Quality.SENSOR_OFF for s in samples(out))
    back = d.feed(packet(80, 97), 1, 1)
    assert [(e.condition, e.active) for e in events(back)] == [("sensor_off", False)]


def test_status_bits_become_quality_flags() -> None:
    d = NoninDecoder()
    art = samples(d.feed(packet(80, 97, ST_ARTF), 0, 0))
    assert all(s.quality == Quality.ARTIFACT and s.value in (80, 97) for s in art)
    fault = d.feed(packet(80, 97, ST_SNSA), 0, 0)
    assert ("probe_fault", True) in [(e.condition, e.active) for e in events(fault)]


def test_bad_checksum_is_counted_and_neighbours_survive() -> None:
    good = [packet(60 + i, 90 + i) for i in range(3)]
    broken = bytearray(good[1])
    broken[4] ^= 0xFF  # checksum of the sync frame
    d = NoninDecoder()
    got = _values(d.feed(good[0] + bytes(broken) + good[2], 0, 0))
    assert got == [("pulse_rate", 60), ("spo2", 90), ("pulse_rate", 62), ("spo2", 92)]
    assert d.stats.bad_frames >= 1


def test_any_chunking_gives_the_same_samples() -> None:
    data = b"".join(packet(50 + i, 80 + i) for i in range(6))
    whole = _values(NoninDecoder().feed(data, 0, 0))
    assert len(whole) == 12
    for size in (1, 2, 4, 5, 7, 124, 126):
        assert _values(feed_all(NoninDecoder(), chunked(data, size))) == whole


def _hrs(d: NoninDecoder, data: bytes, chunk: int) -> set[float]:
    return {s.value for s in samples(feed_all(d, chunked(data, chunk))) if s.parameter == "pulse_rate"}


@FUZZ
@given(st.binary(max_size=3000), st.integers(1, 300))
def test_fuzz_random_bytes_bounded(data: bytes, chunk: int) -> None:
    d = NoninDecoder()
    for part in chunked(data, chunk):
        d.feed(part, 0, 0)
        assert d.buffered <= d.max_buffer


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=40), min_size=5, max_size=5),
       st.lists(st.integers(3, 25), min_size=5, max_size=5), st.integers(1, 200))
def test_fuzz_junk_inside_and_between_packets_every_packet_survives(
    junk: list[bytes], where: list[int], chunk: int
) -> None:
    parts = []
    for i in range(5):
        p = packet(40 + i, 90)
        cut = where[i] * 5  # after frame 2: the packet's numerics are already complete
        parts.append(p[:cut] + junk[i] + p[cut:])
    d = NoninDecoder()
    assert _hrs(d, b"".join(parts), chunk) == {40.0, 41.0, 42.0, 43.0, 44.0}
    assert d.stats.bad_frames >= 1


@FUZZ
@given(st.integers(0, 10_000), st.integers(0, 7), st.integers(1, 130))
def test_fuzz_bit_flip_costs_at_most_one_packet(pos: int, bit: int, chunk: int) -> None:
    data = bytearray(b"".join(packet(40 + i, 90) for i in range(6)))
    pos %= len(data)
    data[pos] ^= 1 << bit
    d = NoninDecoder()
    got = _hrs(d, bytes(data), chunk)
    hit = pos // 125
    assert {40.0 + i for i in range(6) if i != hit} <= got
    assert d.stats.bad_frames >= 1  # any single-bit flip breaks the checksum (or the always-1 bit)


@FUZZ
@given(st.integers(1, 50), st.sampled_from([b"\x01", b"\x81", b"\x00", b"\xff"]))
def test_flood_then_recovery(kb: int, byte: bytes) -> None:
    d = NoninDecoder()
    for part in chunked(byte * (kb * 1024), 4096):
        d.feed(part, 0, 0)
        assert d.buffered <= d.max_buffer
    assert _values(d.feed(packet(77, 95) * 2, 0, 0))[:2] == [("pulse_rate", 77), ("spo2", 95)]


def test_emulator_packets_follow_the_scenario() -> None:
    emu = NoninEmulator(make_scenario("desaturation", seed=5))
    d = NoninDecoder()
    early = samples(d.feed(emu.produce(1.0, 0), 0, 0))
    late = samples(d.feed(emu.produce(60.0, 0), 0, 0))
    spo2 = {s.parameter: s.value for s in early}["spo2"], {s.parameter: s.value for s in late}["spo2"]
    assert spo2[0] >= 94 and spo2[1] <= 86
    assert len(emu.produce(0, 0)) == 125 and emu.period_s == 1 / 3
