"""Unit tests of wire message -> line protocol (influxdb-client's serializer is the escaping oracle)."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client import Point, WritePrecision  # type: ignore[attr-defined]

from cloud.points import line, to_lines
from tests.uplink_fixtures import T0, alarm, raw, summary
from wire import messages

_FLOAT = re.compile(r" a=([^,]+),b=")
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)


def _oracle(meas: str, tag_key: str, tag_val: str, fval: float, ival: int, sval: str) -> str:
    p: Any = Point(meas)  # type: ignore[no-untyped-call]
    p = p.tag(tag_key, tag_val).field("a", fval).field("b", ival).field("c", sval).field("d", True)
    return str(p.time(T0, WritePrecision.NS).to_line_protocol())


@settings(max_examples=200, deadline=None)
@given(meas=_text, tag_key=_text, tag_val=_text, sval=st.text(max_size=20), fval=st.floats(allow_nan=False,
       allow_infinity=False), ival=st.integers(-(2**63), 2**63 - 1))
def test_line_matches_the_influxdb_client_serializer(meas: str, tag_key: str, tag_val: str, sval: str, fval: float,
                                                     ival: int) -> None:
    tag_val = tag_val.rstrip("\\")  # the oracle emits an escaping trailing backslash as is (a bug we avoid)
    tag_key = tag_key.rstrip("\\")
    if not tag_val.strip() or not tag_key.strip() or meas.startswith("#"):
        return
    ours = line(meas, {tag_key: tag_val}, {"a": fval, "b": ival, "c": sval, "d": True}, T0)
    oracle = _oracle(meas, tag_key, tag_val, fval, ival, sval)
    # floats may be spelled differently (0.0 vs 0): compare the value, everything else byte for byte
    fa, fb = _FLOAT.search(ours), _FLOAT.search(oracle)
    assert fa and fb and float(fa.group(1)) == float(fb.group(1)) == fval
    assert _FLOAT.sub(" a=F,b=", ours) == _FLOAT.sub(" a=F,b=", oracle)


def test_nan_and_infinite_values_are_left_out_and_a_trailing_backslash_dropped() -> None:
    got = line("m", {"t": "x\\"}, {"a": math.nan, "b": math.inf, "c": 1.0, "d": None}, 5)
    assert got == "m,t=x c=1.0 5"


def test_summary_points_carry_seq_as_field_and_identity_as_tags() -> None:
    msg = summary(3, beds=2)
    msg.gw, msg.seq = "gw1", 42
    lines = to_lines(msg, "site1", "summaries")
    assert len(lines) == 2
    assert lines[0].startswith("vitals,bed=b0,gateway=gw1,param=spo2,patient=p0,site=site1,stream=summaries ")
    assert "seq=42i" in lines[0] and "count=5i" in lines[0] and lines[0].endswith(f" {T0 + 3 * 10**9}")
    assert to_lines(msg, "site1", "summaries") == lines  # a replay is the same points: overwrite, not double


@pytest.mark.parametrize(
    ("msg", "measurement", "fields"),
    [
        (raw(1), "raw", ("value=61.0", "quality=0i")),
        (alarm(1), "alarms", ('condition="spo2_low"', "value=85.0")),
        (messages.Scores(v=1, gw="", seq=0, items=[messages.Score("b1", "p", T0, 5, None)]), "scores",
         ("news2=5i",)),
        (messages.Event(v=1, gw="", seq=0, t=T0, kind="model_promoted", detail={"to": "1.2", "ok": True}),
         "events", ('detail="{\\"ok\\": true, \\"to\\": \\"1.2\\"}"',)),
        (messages.Gap(v=1, gw="", seq=0, t=T0, stream="bulk", first_seq=3, last_seq=9, count=7, reason="quota"),
         "gaps", ("first_seq=3i", "last_seq=9i", "count=7i")),
        (messages.Finding(v=1, gw="", seq=0, t=T0, room="endo1", present=True, confidence=0.9, area=0.1,
                          box=(0.1, 0.2, 0.3, 0.4)), "findings", ("present=true", "box_h=0.4")),
        (messages.Status(v=1, gw="", seq=0, t=T0, online=False, backlog=12, oldest_unsent_s=3.5), "status",
         ("online=false", "backlog=12i")),
    ],
)
def test_every_message_kind_maps_to_its_measurement(msg: messages.Message, measurement: str,
                                                    fields: tuple[str, ...]) -> None:
    msg.gw, msg.seq = "gw1", 7
    (ln,) = to_lines(msg, "s1", "events")
    assert ln.split(",", 1)[0] == measurement
    assert "gateway=gw1" in ln and "stream=events" in ln and "seq=7i" in ln
    for f in fields:
        assert f in ln


_val = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=200, deadline=None)
@given(bed=st.text(max_size=6), patient=st.text(max_size=6), param=st.text(max_size=6), v=_val, mn=_val, mean=_val,
       count=st.integers(0, 10**6), quality=st.integers(0, 255), seq=st.integers(1, 2**40))
def test_fast_bulk_path_equals_the_generic_one(bed: str, patient: str, param: str, v: float, mn: float,
                                               mean: float, count: int, quality: int, seq: int) -> None:
    raw_msg = messages.RawBatch(v=1, gw="gw 1", seq=seq, items=[messages.Raw(bed, patient, param, T0, v, quality)])
    summ = messages.Summary(v=1, gw="gw,1", seq=seq, interval_s=2,
                            items=[messages.SummaryItem(bed, patient, param, T0, count, mn, 1.0, mean, v, 3)])
    for msg in (raw_msg, summ):
        assert to_lines(msg, "site=1", "bulk") == to_lines(msg, "site=1", "bulk", fast=False)
