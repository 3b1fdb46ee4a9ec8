"""HL7 v2 ORU^R01 over MLLP: OBX by MDC and LOINC, ACKs, fuzzing, and a real TCP round trip."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinical.sample import Quality
from firmware_bridge.config import parse_device
from firmware_bridge.emulators.hl7 import Hl7Sender, oru_message
from firmware_bridge.emulators.scenarios import make_scenario
from firmware_bridge.hl7_mllp import MLLP_END, SB, MllpDecoder, parse_ts
from firmware_bridge.mllp_server import MllpSource
from firmware_bridge.sources import make_source
from tests.fw_fixtures import Collector, chunked, samples

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REF_OBX = "OBX|4|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.6.1.1|98|262688^MDC_DIM_PERCENT^MDC|||||R|||20240102030405|||0012"


def _msg(*obx: str, cid: str = "C1", pv1: str = "ICU^1^12") -> bytes:
    segs = ["MSH|^~\\&|CMS|WARD|GW|HOSP|20240102030405||ORU^R01|" + cid + "|P|2.6", "PID|||P77^^^H^MR",
            "PV1||I|" + pv1, "OBR|1|||x|||20240102030400", *obx]
    return SB + "\r".join(segs).encode() + b"\r" + MLLP_END


def test_reference_obx_by_mdc_and_ack() -> None:
    d = MllpDecoder("def", "cms", {"12": "bed-12"})
    (s,) = samples(d.feed(_msg(REF_OBX), 1.0, 2.0))
    assert (s.parameter, s.value, s.unit, s.mdc, s.bed) == ("spo2", 98.0, "%", 150456, "bed-12")
    assert s.device_time == parse_ts("20240102030405") and s.quality == Quality.VALID and s.patient == "P77"
    ack = d.data_to_send()
    assert ack.startswith(SB) and ack.endswith(MLLP_END) and b"\rMSA|AA|C1\r" in ack and b"ACK^R01" in ack


def test_loinc_ucum_fahrenheit_and_cannot_obtain() -> None:
    d = MllpDecoder()
    out = samples(d.feed(_msg("OBX|1|NM|8867-4^Heart rate^LN||72|/min^^UCUM|||||F",
                              "OBX|2|NM|8310-5^Body temp^LN||98.6|[degF]^^UCUM|||||F",
                              "OBX|3|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||||||||X",
                              "OBX|4|NM|999999^MDC_UNKNOWN^MDC||5||||||F",
                              "OBX|5|ST|151562^MDC_RESP_RATE^MDC||fast||||||F"), 0, 0))
    got = {s.parameter: s for s in out}
    assert got["heart_rate"].value == 72 and got["temperature"].value == pytest.approx(37.0)
    assert math.isnan(got["spo2"].value) and got["spo2"].quality == Quality.UNAVAILABLE
    assert "resp_rate" not in got and len(out) == 3  # unknown code ignored, non-numeric rejected


def test_bad_message_is_nacked_and_counted() -> None:
    d = MllpDecoder()
    assert d.feed(SB + b"MSH|^~\\&|A|B|C|D|x||ADT^A01|Z9|P|2.6\r" + MLLP_END, 0, 0) == []
    ack = d.data_to_send()
    assert b"MSA|AE|Z9" in ack and d.stats.bad_frames == 1 and d.acks["AE"] == 1
    assert d.feed(SB + b"garbage" + MLLP_END, 0, 0) == [] and b"MSA|AE|" in d.data_to_send()


def test_cut_message_does_not_swallow_the_next() -> None:
    d = MllpDecoder()
    first = _msg(REF_OBX, cid="A")
    out = samples(d.feed(first[: len(first) // 2] + _msg(REF_OBX, cid="B"), 0, 0))
    assert len(out) == 1 and d.stats.bad_frames == 1 and b"MSA|AA|B" in d.data_to_send()


@FUZZ
@given(st.binary(max_size=3000), st.integers(1, 400))
def test_fuzz_random_bytes(data: bytes, chunk: int) -> None:
    d = MllpDecoder(max_message=2048)
    for part in chunked(data, chunk):
        d.feed(part, 0, 0)
        d.data_to_send()
        assert d.buffered <= 2048 + chunk


@FUZZ
@given(st.lists(st.binary(max_size=50).filter(lambda b: b"\x0b" not in b), min_size=4, max_size=4),
       st.integers(1, 300))
def test_fuzz_junk_between_messages(junk: list[bytes], chunk: int) -> None:
    msgs = [_msg(REF_OBX.replace("|98|", f"|{90 + i}|"), cid=f"K{i}") for i in range(4)]
    d = MllpDecoder()
    got = set()
    for part in chunked(b"".join(j + m for j, m in zip(junk, msgs, strict=True)), chunk):
        got |= {s.value for s in samples(d.feed(part, 0, 0))}
    assert got == {90.0, 91.0, 92.0, 93.0}
    assert d.acks["AA"] == 4


@FUZZ
@given(st.integers(0, 100_000), st.integers(0, 7))
def test_fuzz_bit_flip_never_crashes_and_spares_other_messages(pos: int, bit: int) -> None:
    msgs = [_msg(REF_OBX.replace("|98|", f"|{90 + i}|"), cid=f"K{i}") for i in range(3)]
    data = bytearray(b"".join(msgs))
    pos %= len(data)
    data[pos] ^= 1 << bit
    hit = pos // len(msgs[0])
    d = MllpDecoder()
    got = {s.value for s in samples(d.feed(bytes(data), 0, 0))}
    assert {90.0 + i for i in range(3) if abs(i - hit) > 1} <= got


async def test_mllp_server_round_trip_with_ack_over_tcp() -> None:
    col = Collector()
    cfg = parse_device({"driver": "hl7_mllp", "id": "cms-1", "bed": "ward", "host": "127.0.0.1", "port": 0,
                        "bed_map": {"12": "bed-12"}, "silence_timeout_s": 0.5})
    src = make_source(cfg, col.emit, col.emit_event)
    assert isinstance(src, MllpSource)
    await src.start()
    task = asyncio.create_task(src.run())
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", src.port)
        writer.write(_msg(REF_OBX, cid="T1") + b"noise" + _msg(REF_OBX.replace("|98|", "|93|"), cid="T2"))
        await writer.drain()
        acks = b""
        while acks.count(MLLP_END) < 2:
            acks += await asyncio.wait_for(reader.read(4096), 5)
        assert b"MSA|AA|T1" in acks and b"MSA|AA|T2" in acks
        assert [s.value for s in col.samples] == [98.0, 93.0] and col.samples[0].bed == "bed-12"
        writer.close()
        await writer.wait_closed()
        await col.wait_for(lambda: ("silent", True) in col.conditions(), within=5)
        # the emulator thread: a monitor pushing a desaturation every 0.1 s
        sender = Hl7Sender("127.0.0.1", src.port, make_scenario("desaturation", 2), beds=["12"], period_s=1.0,
                           speed=10.0).start()
        try:
            await col.wait_for(lambda: sender.acked >= 5)
        finally:
            sender.stop()
        assert sender.nacked == 0
        assert ("silent", False) in col.conditions()
        assert ("connected", True) in col.conditions()
    finally:
        await src.stop()
        await asyncio.wait_for(task, 5)


def test_emulator_message_parses_completely() -> None:
    m = oru_message(make_scenario("probe_off", 1).at(30.0), "X1", 1_700_000_000.0, bed="4")
    d = MllpDecoder(bed_map={"4": "bed-4"})
    got = {s.parameter: s for s in samples(d.feed(SB + m + MLLP_END, 0, 0))}
    assert len(got) == 8 and all(s.bed == "bed-4" for s in got.values())
    assert math.isnan(got["spo2"].value) and got["heart_rate"].quality == Quality.VALID
