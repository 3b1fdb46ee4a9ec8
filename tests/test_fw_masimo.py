"""Masimo Rad-8 ASCII 1 codec: the reference line, EXC mapping, fuzzing."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinical.sample import Quality
from firmware_bridge.emulators.masimo import MasimoEmulator
from firmware_bridge.emulators.scenarios import make_scenario
from firmware_bridge.masimo import MAX_LINE, MasimoDecoder, exc_quality, format_line
from tests.fw_fixtures import chunked, events, feed_all, samples

REF = (
    b"02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% "
    b"DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n"
)
REF_TIME = 1456181265.0  # 2016-02-22 22:47:45 (device clock, read as UTC)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_reference_line_decodes() -> None:
    d = MasimoDecoder("3", "rad8")
    out = samples(d.feed(REF, 1.0, 2.0))
    got = {s.parameter: s for s in out}
    assert got["spo2"].value == 98 and got["spo2"].unit == "%" and got["spo2"].mdc == 150456
    assert got["pulse_rate"].value == 97 and got["pulse_rate"].unit == "/min"
    assert got["perfusion_index"].value == pytest.approx(3.6)
    assert all(s.quality == Quality.VALID and s.device_time == REF_TIME for s in out)
    assert all(s.bed == "3" and s.device == "rad8" and s.recv_mono == 1.0 and s.recv_wall == 2.0 for s in out)
    assert d.stats.frames == 1 and d.stats.bad_frames == 0


def test_emulator_line_is_byte_exact() -> None:
    assert format_line(REF_TIME, 98, 97, 3.6) == REF
    radical = format_line(REF_TIME, 98, 97, 3.6, pvi=14)
    assert b" PVI=014 ALARM=" in radical
    assert samples(MasimoDecoder().feed(radical, 0, 0))[0].value == 98


def test_dashes_are_unavailable_not_numbers() -> None:
    line = REF.replace(b"SPO2=098%", b"SPO2=---%").replace(b"PI=03.60%", b"PI=--.--%")
    got = {s.parameter: s for s in samples(MasimoDecoder().feed(line, 0, 0))}
    assert math.isnan(got["spo2"].value) and got["spo2"].quality & Quality.UNAVAILABLE
    assert math.isnan(got["perfusion_index"].value)
    assert got["pulse_rate"].value == 97 and got["pulse_rate"].quality == Quality.VALID


def test_sensor_off_is_a_technical_condition_never_a_number() -> None:
    d = MasimoDecoder("3", "rad8")
    off = REF.replace(b"EXC=000800", b"EXC=000820")  # numbers still printed, sensor-off bit set
    out = d.feed(off, 0, 0)
    assert [(e.condition, e.active) for e in events(out)] == [("sensor_off", True)]
    assert all(math.isnan(s.value) and s.quality & Quality.SENSOR_OFF for s in samples(out))
    assert events(d.feed(off, 1, 1)) == []  # reported on change only
    back = d.feed(REF, 2, 2)
    assert [(e.condition, e.active) for e in events(back)] == [("sensor_off", False)]
    assert samples(back)[0].value == 98


@pytest.mark.parametrize(
    ("exc", "quality", "conds"),
    [
        (0x000, Quality.VALID, set()),
        (0x800, Quality.VALID, set()),
        (0x001, Quality.SENSOR_OFF, {"sensor_off"}),
        (0x002, Quality.UNAVAILABLE, {"probe_fault"}),
        (0x004, Quality.QUESTIONABLE, {"low_signal"}),
        (0x008, Quality.QUESTIONABLE, set()),
        (0x010, Quality.ARTIFACT, set()),
        (0x040, Quality.ARTIFACT, set()),
        (0x080, Quality.UNAVAILABLE, {"probe_fault"}),
        (0x400, Quality.QUESTIONABLE, {"low_signal"}),
    ],
)
def test_exc_bits(exc: int, quality: Quality, conds: set[str]) -> None:
    assert exc_quality(exc) == (quality, conds)


def test_any_chunking_gives_the_same_samples() -> None:
    data = b"".join(format_line(REF_TIME + i, 90 + i, 60 + i, 1.0 + i / 10) for i in range(8))
    whole = [(s.parameter, s.value) for s in samples(MasimoDecoder().feed(data, 0, 0))]
    for size in (1, 3, 7, 64):
        assert [(s.parameter, s.value) for s in samples(feed_all(MasimoDecoder(), chunked(data, size)))] == whole
    assert len(whole) == 24


def test_bad_lines_are_counted() -> None:
    d = MasimoDecoder()
    d.feed(b"hello world\r\n" + REF.replace(b"SPO2=098%", b"SPO2=0x8%") + REF, 0, 0)
    assert d.stats.bad_frames == 2 and d.stats.frames == 1


def _lines(n: int) -> list[bytes]:
    return [format_line(REF_TIME + i, 85 + i % 15, 60 + i, 2.5) for i in range(n)]


def _times(decoder: MasimoDecoder, data: bytes, chunk: int) -> set[float]:
    return {s.device_time or 0.0 for s in samples(feed_all(decoder, chunked(data, chunk)))}


@FUZZ
@given(st.binary(max_size=4000), st.integers(1, 300))
def test_fuzz_random_bytes(data: bytes, chunk: int) -> None:
    d = MasimoDecoder()
    for part in chunked(data, chunk):
        d.feed(part, 0, 0)
        assert d.buffered <= MAX_LINE + chunk


@FUZZ
@given(st.lists(st.binary(max_size=200).filter(lambda b: b"SN=" not in b), min_size=6, max_size=6),
       st.integers(1, 97))
def test_fuzz_junk_between_lines_every_line_survives(junk: list[bytes], chunk: int) -> None:
    lines = _lines(6)
    data = b"".join(j + line for j, line in zip(junk, lines, strict=True))
    d = MasimoDecoder()
    assert _times(d, data, chunk) == {REF_TIME + i for i in range(6)}
    assert d.stats.frames == 6


@FUZZ
@given(st.integers(0, 10_000), st.integers(0, 7), st.integers(1, 64))
def test_fuzz_bit_flip_loses_at_most_the_damaged_lines(pos: int, bit: int, chunk: int) -> None:
    lines = _lines(8)
    data = bytearray(b"".join(lines))
    pos %= len(data)
    data[pos] ^= 1 << bit
    d = MasimoDecoder()
    got = _times(d, bytes(data), chunk)
    hit, start = 0, 0
    for i, line in enumerate(lines):
        if start <= pos < start + len(line):
            hit = i
        start += len(line)
    undamaged = {REF_TIME + i for i in range(8) if i not in (hit, hit + 1)}
    assert undamaged <= got  # a flipped line end may merge two lines; every other line arrives
    assert d.stats.frames + d.stats.bad_frames >= 7


@FUZZ
@given(st.integers(1, 20), st.integers(1, 4096))
def test_flood_without_line_end_stays_bounded_and_recovers(kb: int, chunk: int) -> None:
    d = MasimoDecoder()
    flood = b"\xaa" * (kb * 1024)
    for part in chunked(flood, chunk):
        d.feed(part, 0, 0)
        assert d.buffered <= MAX_LINE + chunk
    assert d.stats.bad_frames >= 1
    out = samples(d.feed(b"\r\n" + REF, 0, 0))
    assert [s.value for s in out][:2] == [98, 97]


def test_emulator_follows_the_scenario() -> None:
    emu = MasimoEmulator(make_scenario("probe_off", seed=3))
    d = MasimoDecoder()
    before = samples(d.feed(emu.produce(5.0, REF_TIME), 0, 0))
    assert before[0].quality == Quality.VALID and 90 <= before[0].value <= 100
    during = d.feed(emu.produce(25.0, REF_TIME + 20), 0, 0)
    assert ("sensor_off", True) in [(e.condition, e.active) for e in events(during)]
    assert all(math.isnan(s.value) for s in samples(during))
