"""IntelliVue MIB/RS232: FCS vector, transparency, session state machine, numerics, fuzzing."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinical.sample import Quality
from firmware_bridge.emulators.philips import PhilipsMonitorEmulator
from firmware_bridge.emulators.scenarios import VitalState, make_scenario
from firmware_bridge.philips_framing import Deframer, encode_frame, escape, fcs16, unescape
from firmware_bridge.philips_mib import (
    AARQ,
    AB_SPDU,
    MS_CALIBRATION_ONGOING,
    MS_DEMO_DATA,
    MS_INVALID,
    MS_QUESTIONABLE,
    MS_TEST_DATA,
    MS_UNAVAILABLE,
    UNIT_DEGF,
    UNIT_KPA,
    NuObs,
    mds_create_event,
    mds_create_result,
    observation,
    poll_reply,
)
from firmware_bridge.philips_session import ASSOCIATED, ASSOCIATING, PhilipsSession
from tests.fw_fixtures import chunked, samples

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WALL = 1_700_000_000.0


def test_fcs_check_value() -> None:
    assert fcs16(b"123456789") == 0x906E


def test_transparency_round_trip() -> None:
    raw = bytes(range(256))
    esc = escape(raw)
    assert b"\xc0" not in esc and b"\xc1" not in esc
    assert b"\x7d\xe0" in esc and b"\x7d\xe1" in esc and b"\x7d\x5d" in esc
    assert unescape(esc) == raw
    assert unescape(b"ab\x7d") is None


def test_frame_layout() -> None:
    f = encode_frame(b"\x01\x02")
    assert f[0] == 0xC0 and f[-1] == 0xC1 and f[1:5] == b"\x11\x01\x00\x02"
    fcs = fcs16(b"\x11\x01\x00\x02\x01\x02")
    assert f[7:9] == struct.pack("<H", fcs)  # low byte first


def test_deframer_accepts_unescaped_fcs_like_vscapturemp() -> None:
    for payload in (bytes([i]) * 3 + bytes([i ^ 0x55]) for i in range(256)):
        d = Deframer()
        assert d.feed(encode_frame(payload, escape_fcs=False)) == [payload]
    # at least one of those FCS values contained 0xC0/0xC1/0x7D, so the fallback really ran
    assert any(
        set(struct.pack("<H", fcs16(b"\x11\x01\x00\x04" + bytes([i]) * 3 + bytes([i ^ 0x55])))) & {0xC0, 0xC1, 0x7D}
        for i in range(256)
    )


def _associate(s: PhilipsSession, m: PhilipsMonitorEmulator, now: float = 0.0) -> list[object]:
    s.connection_made(now)
    out: list[object] = []
    for _ in range(3):
        req = s.data_to_send()
        if req:
            out += s.feed(m.receive(req, now, WALL + now), now, WALL + now)
    return out


def test_association_sequence_and_polling() -> None:
    s, m = PhilipsSession("7", "mp50", poll_interval_s=1.0), PhilipsMonitorEmulator(make_scenario("stable", 1))
    s.connection_made(0.0)
    assert s.data_to_send() == encode_frame(AARQ) and s.state == ASSOCIATING
    s.feed(m.receive(encode_frame(AARQ), 0, WALL), 0.0, WALL)
    assert s.state == ASSOCIATED and s.sent[-1] == "mds_create_result"
    # the MDS create result echoes the monitor's invoke id and event time
    assert s.data_to_send() == encode_frame(mds_create_result(1, 0))
    got = []
    for step in range(1, 40):
        now = step * 0.25
        s.tick(now)
        got += samples(s.feed(m.receive(s.data_to_send(), now, WALL + now), now, WALL + now))
    assert s.sent.count("poll") == 10  # t = 0 .. 9.75 s at 1 s
    assert s.sent.count("keepalive") == 1  # at 6 s
    names = {x.parameter for x in got}
    assert names == {"heart_rate", "pulse_rate", "spo2", "perfusion_index", "resp_rate", "nibp_sys", "nibp_dia",
                     "nibp_mean", "temperature"}
    assert all(x.quality == Quality.VALID and x.bed == "7" for x in got)
    assert m.state == "associated" and m.associations == 1


def test_mds_attribute_repoll_every_60_s_and_data_timeout() -> None:
    s, m = PhilipsSession(poll_interval_s=5.0, data_timeout_s=15.0), PhilipsMonitorEmulator(make_scenario("stable"))
    _associate(s, m)
    for step in range(1, 61):
        s.tick(float(step))
        s.feed(m.receive(s.data_to_send(), step, WALL + step), float(step), WALL + step)
    assert s.sent.count("poll_mds") == 1 and s.sent.count("keepalive") == 10
    s.tick(80.0)  # nothing heard for 20 s: start over
    assert s.state == ASSOCIATING and s.sent[-1] == "aarq"


def test_abort_and_refusal_restart_association() -> None:
    s, m = PhilipsSession(), PhilipsMonitorEmulator(make_scenario("stable"))
    _associate(s, m)
    s.feed(encode_frame(bytes([AB_SPDU]) + b"\x00" * 8), 1.0, WALL)
    assert s.state == ASSOCIATING
    s.tick(2.5)
    assert s.sent[-1] == "aarq"


def _reply(values: list[NuObs], extended: bool = False) -> bytes:
    return encode_frame(poll_reply(3, 3, 0, WALL, [observation(1, values)], extended=extended))


@pytest.mark.parametrize(
    ("state", "quality"),
    [
        (0, Quality.VALID),
        (MS_QUESTIONABLE, Quality.QUESTIONABLE),
        (MS_CALIBRATION_ONGOING, Quality.CALIBRATING),
        (MS_TEST_DATA, Quality.TEST),
        (MS_DEMO_DATA, Quality.DEMO),
        (MS_UNAVAILABLE, Quality.UNAVAILABLE),
        (MS_INVALID, Quality.UNAVAILABLE),
    ],
)
def test_measurement_state(state: int, quality: Quality) -> None:
    s = PhilipsSession()
    (x,) = samples(s.feed(_reply([NuObs(19384, state, 544, 0xFF0003D5)]), 0, 0))  # 98.1 %
    assert x.parameter == "spo2" and x.quality == quality
    assert math.isnan(x.value) if quality & Quality.UNAVAILABLE else x.value == pytest.approx(98.1)


@pytest.mark.parametrize("raw", [0x007FFFFF, 0x00800000, 0x007FFFFE, 0x00800002, 0x00800001])
def test_float_specials_are_unavailable(raw: int) -> None:
    (x,) = samples(PhilipsSession().feed(_reply([NuObs(16770, 0, 2720, raw)]), 0, 0))
    assert math.isnan(x.value) and x.quality & Quality.UNAVAILABLE


def test_compound_nibp_extended_poll_linked_reply_and_units() -> None:
    s = PhilipsSession()
    nibp = [NuObs(18949, 0, UNIT_KPA, 0xFF0000A0), NuObs(18950, 0, 3872, 80), NuObs(18951, 0, 3872, 93)]
    temp = NuObs(19272, 0, UNIT_DEGF, 0xFF0003D6)  # 98.2 degF
    frames = _reply(nibp, extended=True) + encode_frame(
        poll_reply(4, 4, 0, WALL, [observation(2, [temp])], linked=(1, 1))
    )
    got = {x.parameter: x.value for x in samples(s.feed(frames, 0, 0))}
    assert got["nibp_sys"] == pytest.approx(120.01, abs=0.01) and got["nibp_dia"] == 80 and got["nibp_mean"] == 93
    assert got["temperature"] == pytest.approx(36.78, abs=0.01)


def test_device_time_from_the_reply() -> None:
    (x,) = samples(PhilipsSession().feed(_reply([NuObs(20490, 0, 2784, 16)]), 0, 0))
    assert x.device_time == pytest.approx(WALL) and x.value == 16 and x.unit == "/min"


def test_emulator_probe_off_reports_invalid_spo2() -> None:
    obs = PhilipsMonitorEmulator.observations(VitalState(80, 97, 16, 120, 80, 37, 3, probe_off=True), WALL)
    got = {x.parameter: x for x in samples(PhilipsSession().feed(encode_frame(poll_reply(1, 1, 0, WALL, obs)), 0, 0))}
    assert math.isnan(got["spo2"].value) and got["spo2"].quality & Quality.UNAVAILABLE
    assert got["heart_rate"].value == 80 and got["heart_rate"].quality == Quality.VALID


def _stream(n: int) -> tuple[bytes, list[bytes]]:
    frames = [encode_frame(poll_reply(i, i, 0, WALL, [observation(1, [NuObs(16770, 0, 2720, 40 + i)])]))
              for i in range(n)]
    return b"".join(frames), frames


def _hrs(s: PhilipsSession, data: bytes, chunk: int) -> set[float]:
    out = set()
    for part in chunked(data, chunk):
        out |= {x.value for x in samples(s.feed(part, 0, 0))}
    return out


@FUZZ
@given(st.binary(max_size=4000), st.integers(1, 512))
def test_fuzz_random_bytes(data: bytes, chunk: int) -> None:
    s = PhilipsSession()
    s.connection_made(0)
    for part in chunked(data, chunk):
        s.feed(part, 0, 0)
        s.tick(1.0)
        assert s.buffered <= s.deframer.max_buffer


@FUZZ
@given(st.lists(st.binary(max_size=60), min_size=6, max_size=6), st.integers(1, 300))
def test_fuzz_junk_between_frames_every_frame_survives(junk: list[bytes], chunk: int) -> None:
    _, frames = _stream(6)
    data = b"".join(j + f for j, f in zip(junk, frames, strict=True))
    s = PhilipsSession()
    assert _hrs(s, data, chunk) == {40.0 + i for i in range(6)}


@FUZZ
@given(st.integers(0, 100_000), st.integers(0, 7), st.integers(1, 300))
def test_fuzz_bit_flip_costs_at_most_one_frame(pos: int, bit: int, chunk: int) -> None:
    data, frames = _stream(7)
    buf = bytearray(data)
    pos %= len(buf) - len(frames[-1])  # damage the first six frames; the seventh arrives intact after them,
    buf[pos] ^= 1 << bit  # as on a live link (a damaged last frame would otherwise just wait for its end)
    hit = pos // len(frames[0]) if len({len(f) for f in frames}) == 1 else -1
    s = PhilipsSession()
    got = _hrs(s, bytes(buf), chunk)
    spared = {40.0 + i for i in range(7) if abs(i - hit) > 1 or hit < 0}
    assert spared <= got
    assert len(got - {40.0 + i for i in range(7)}) == 0  # a damaged frame never yields a wrong number
    assert s.stats.bad_frames >= 1 or len(got) == 7


@FUZZ
@given(st.sampled_from([b"\xc0", b"\x7d", b"\x00", b"\xc1"]), st.integers(1, 40))
def test_flood_stays_bounded_then_recovers(byte: bytes, kb: int) -> None:
    s = PhilipsSession()
    for part in chunked(byte * kb * 1024, 4096):
        s.feed(part, 0, 0)
        assert s.buffered <= s.deframer.max_buffer
    data, _ = _stream(2)
    assert _hrs(s, b"\xc1" + data, 4096) >= {41.0}


def test_truncated_pdu_is_counted_not_raised() -> None:
    s = PhilipsSession()
    good = poll_reply(1, 1, 0, WALL, [observation(1, [NuObs(16770, 0, 2720, 60)])])
    for cut in range(0, len(good), 3):
        s.feed(encode_frame(good[:cut]), 0, 0)
    assert s.pdu_errors > 0
    assert samples(s.feed(encode_frame(mds_create_event(1, 0, WALL)) + encode_frame(good), 0, 0))[0].value == 60


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([b"", b"\xe1\x00\x00\x02\x00\x02", b"\xe1\x00\x00\x02\x00\x05",
                                                 b"\xe1\x00\x00\x02\x00\x01"]))
def test_fuzz_garbage_pdus_inside_valid_frames(body: bytes, head: bytes) -> None:
    s = PhilipsSession()
    s.connection_made(0)
    s.feed(encode_frame(head + body), 0, 0)  # well framed, FCS right, content arbitrary
    assert s.stats.frames == 1
    good = encode_frame(poll_reply(1, 1, 0, WALL, [observation(1, [NuObs(16770, 0, 2720, 61)])]))
    assert [x.value for x in samples(s.feed(good, 0, 0))] == [61.0]


@FUZZ
@given(st.data())
def test_fuzz_mutated_poll_replies_never_raise(data: st.DataObject) -> None:
    reply = bytearray(poll_reply(1, 1, 0, WALL, PhilipsMonitorEmulator.observations(
        VitalState(80, 97, 16, 120, 80, 37, 3), WALL)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(reply) - 1))
        reply[i] = data.draw(st.integers(0, 255))
    s = PhilipsSession()
    out = samples(s.feed(encode_frame(bytes(reply)), 0, 0))
    assert all(x.unit for x in out)
    assert s.stats.frames == 1


def test_extended_poll_session_against_the_emulator() -> None:
    s = PhilipsSession(extended=True)
    m = PhilipsMonitorEmulator(make_scenario("desaturation", 4))
    _associate(s, m)
    got = []
    for step in range(1, 5):
        s.tick(float(step))
        got += samples(s.feed(m.receive(s.data_to_send(), 40.0 + step, WALL), float(step), WALL))
    spo2 = [x.value for x in got if x.parameter == "spo2"]
    assert len(spo2) >= 4 and all(80 <= v <= 90 for v in spo2)  # the emulator is 40 s into a desaturation
    assert s.sent.count("poll") >= 4 and s.stats.bad_frames == 0
