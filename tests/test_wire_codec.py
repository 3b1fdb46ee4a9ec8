"""The v1 contract: round trips, strict rejection of untrusted payloads."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import topics
from wire.codec import MAX_PAYLOAD, WireError, decode, encode
from wire.messages import VERSION, Alarm, Gap, Status, Summary, SummaryItem


def summary(n: int = 3) -> Summary:
    items = [
        SummaryItem(f"bed{i}", "p" * 32, "heart_rate", 1_700_000_000_000_000_000, 60, 70.0, 95.0, 81.5, 90.0)
        for i in range(n)
    ]
    return Summary(v=VERSION, gw="gw1", seq=7, interval_s=60.0, items=items)


def test_round_trip_all_kinds() -> None:
    msgs = [
        summary(),
        Alarm(
            v=1, gw="gw1", seq=1, alarm_id="a1", bed="b1", patient="p", t=1, state="raised",
            priority="high", kind="physiological", source="threshold", condition="spo2_low",
            score=3.0, latency_ms={"raise": 0.4},
        ),
        Gap(v=1, gw="gw1", seq=2, t=5, stream="bulk", first_seq=10, last_seq=19, count=10, reason="quota"),
        Status(v=1, gw="gw1", seq=0, t=9, online=True, backlog=3),
    ]
    for m in msgs:
        assert decode(encode(m)) == m


def test_nan_survives_round_trip() -> None:
    s = summary(1)
    s.items[0].last = math.nan
    out = decode(encode(s))
    assert isinstance(out, Summary) and math.isnan(out.items[0].last)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "malformed"),
        (b"\xc1", "malformed"),
        (b"not msgpack at all", "schema"),  # decodes as the integer 110: not a message
        (b"\x81\xa1k\xa2\xff\xfe", "malformed"),  # a tag that is not UTF-8
        (msgspec.msgpack.encode({"k": "nope", "v": 1, "gw": "g", "seq": 1}), "schema"),
        (msgspec.msgpack.encode({"k": "sts", "v": 1, "gw": "g", "seq": 1}), "schema"),  # missing t/online
        (msgspec.msgpack.encode({"k": "sts", "v": 1, "gw": "g", "seq": 1, "t": 1, "online": True, "x": 1}), "schema"),
        (msgspec.msgpack.encode({"k": "sts", "v": 1, "gw": "g", "seq": "1", "t": 1, "online": True}), "schema"),
        (msgspec.msgpack.encode({"k": "sts", "v": 3, "gw": "g", "seq": 1, "t": 1, "online": True}), "version"),
            (msgspec.msgpack.encode({"k": "sts", "v": 0, "gw": "g", "seq": 1, "t": 1, "online": True}), "version"),
        (b"\x00" * (MAX_PAYLOAD + 1), "oversize"),
    ],
)
def test_bad_payloads_rejected_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError) as info:
        decode(payload)
    assert info.value.reason == reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    try:
        decode(data)
    except WireError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
def test_bit_flips_in_valid_message_are_rejected_or_decoded(pos: int, flip: int) -> None:
    raw = bytearray(encode(summary()))
    raw[pos % len(raw)] ^= flip
    try:
        decode(bytes(raw))
    except WireError as exc:
        assert exc.reason in {"malformed", "schema", "version"}


def test_topics() -> None:
    t = topics.uplink("site-a", "gw_1", "alarms")
    assert t == "pg/v1/site-a/gw_1/alarms"
    assert topics.parse_uplink(t) == ("site-a", "gw_1", "alarms")
    assert topics.ingest_filters()[0] == "$share/ingest/pg/v1/+/+/alarms"
    assert len(topics.ingest_filters()) == len(topics.STREAMS)
    assert topics.receipts("site-a", "gw_1") == "pg/v1/site-a/gw_1/receipts"
    assert not any(f.endswith(("/receipts", "/models", "/+")) for f in topics.ingest_filters())
    for bad in ("pg/v1/a/b", "pg/v2/a/b/alarms", "pg/v1/a/b/other", "pg/v1/a/b+/alarms", "x/v1/a/b/alarms"):
        with pytest.raises(topics.TopicError):
            topics.parse_uplink(bad)
    with pytest.raises(topics.TopicError):
        topics.check_id("gateway", "gw/1")


def test_large_messages_are_compressed_and_bounded() -> None:
    import zlib

    from wire.codec import COMPRESS_ABOVE, MAX_DECOMPRESSED, ZLIB_MARK

    big = summary(50)
    raw = msgspec.msgpack.encode(big)
    assert len(raw) > COMPRESS_ABOVE
    wire_bytes = encode(big)
    assert wire_bytes[0] == ZLIB_MARK and len(wire_bytes) < len(raw) / 2
    assert decode(wire_bytes) == big
    small = Status(v=1, gw="gw1", seq=0, t=9, online=True)
    assert encode(small)[0] != ZLIB_MARK
    bomb = bytes([ZLIB_MARK]) + zlib.compress(b"\x00" * (MAX_DECOMPRESSED + 10))
    with pytest.raises(WireError) as info:
        decode(bomb)
    assert info.value.reason == "oversize"
    with pytest.raises(WireError) as info:
        decode(wire_bytes[:-5])
    assert info.value.reason == "malformed"


def test_bench_wire_reports_contract_smaller_than_json() -> None:
    from bench.wire_sizes import run

    out = run(beds=8, n=5)
    assert out["items"] == 48
    assert out["contract_msgpack_zlib"]["bytes"] < out["json_stdlib"]["bytes"]
    assert all(out[k]["encode_us"] > 0 for k in ("contract_msgpack_zlib", "json_msgspec", "json_stdlib"))
