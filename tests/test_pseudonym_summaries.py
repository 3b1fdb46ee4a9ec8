from __future__ import annotations

import math

import pytest

from clinical.sample import Quality, Sample
from edge.pseudonym import Pseudonymizer
from edge.summaries import Summarizer
from wire.messages import Message, RawBatch, Summary


def test_pseudonym_is_keyed_stable_and_not_the_reference() -> None:
    a = Pseudonymizer(b"k" * 32)
    b = Pseudonymizer(b"j" * 32)
    p = a.pseudonym("MRN-123456")
    assert p == a.pseudonym("MRN-123456")
    assert p != b.pseudonym("MRN-123456")
    assert p != a.pseudonym("MRN-123457")
    assert "123456" not in p and len(p) == 32
    assert a.pseudonym("") == ""
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")


def _s(bed: str, param: str, value: float, wall: float, q: Quality = Quality.VALID) -> Sample:
    return Sample(bed=bed, parameter=param, value=value, unit="/min", recv_mono=wall, recv_wall=wall,
                  quality=q, patient="MRN-1")


def test_summaries_per_interval_with_invalid_counted() -> None:
    out: list[tuple[str, Message]] = []
    ps = Pseudonymizer(b"k" * 32)
    s = Summarizer("gw1", lambda stream, m: out.append((stream, m)), ps, interval_s=10.0)
    for i, v in enumerate([60.0, 80.0, 70.0]):
        s.on_sample(_s("b1", "heart_rate", v, 100.0 + i))
    s.on_sample(_s("b1", "heart_rate", math.nan, 104.0, Quality.SENSOR_OFF))
    s.on_sample(_s("b1", "spo2", 97.0, 105.0))
    assert out == []
    s.on_sample(_s("b1", "heart_rate", 90.0, 111.0))  # next interval: the first is set aside...
    assert out == []  # ...and not built or encoded on the device's callback
    s.tick(0.0, 111.5)  # the tick publishes it
    assert len(out) == 1
    stream, msg = out[0]
    assert stream == "summaries" and isinstance(msg, Summary)
    hr = next(i for i in msg.items if i.param == "heart_rate")
    assert (hr.count, hr.min, hr.max, hr.mean, hr.last, hr.invalid) == (3, 60.0, 80.0, 70.0, 70.0, 1)
    assert hr.t == 100 * 10**9
    assert hr.patient == ps.pseudonym("MRN-1") and "MRN" not in hr.patient
    s.tick(0.0, 125.0)  # interval over with no new sample: flushed by the tick
    assert len(out) == 2 and isinstance(out[1][1], Summary) and out[1][1].items[0].t == 110 * 10**9


def test_raw_numerics_optional() -> None:
    out: list[tuple[str, Message]] = []
    s = Summarizer("gw1", lambda stream, m: out.append((stream, m)), Pseudonymizer(b"k" * 32), raw=True, raw_batch=2)
    s.on_sample(_s("b1", "spo2", 97.0, 1.0))
    s.tick(1.5, 1.5)
    assert out == []  # neither full nor 5 s old
    s.on_sample(_s("b1", "spo2", 96.0, 2.0))
    s.tick(2.5, 2.5)
    assert [st for st, _ in out] == ["bulk"]
    assert isinstance(out[0][1], RawBatch) and [r.value for r in out[0][1].items] == [97.0, 96.0]


def test_scores_go_up_with_each_summary_pseudonymised() -> None:
    from wire.messages import Scores

    out: list[tuple[str, Message]] = []
    ps = Pseudonymizer(b"k" * 32)
    s = Summarizer("gw1", lambda stream, m: out.append((stream, m)), ps, interval_s=10.0,
                   patients={"b1": "MRN-1", "b2": "MRN-2"},
                   scores=lambda: {"b1": (5, 0.42), "b2": (None, None)})
    s.on_sample(_s("b1", "heart_rate", 80.0, 100.0))
    s.tick(0.0, 111.0)
    kinds = [type(m).__name__ for _, m in out]
    assert kinds == ["Summary", "Scores"]
    scores = out[1][1]
    assert isinstance(scores, Scores) and len(scores.items) == 1  # b2 has nothing scored yet
    item = scores.items[0]
    assert (item.bed, item.news2, item.anomaly, item.t) == ("b1", 5, 0.42, 100 * 10**9)
    assert item.patient == ps.pseudonym("MRN-1")


def test_patient_named_by_the_device_is_used_for_summaries_and_scores() -> None:
    from wire.messages import Scores

    out: list[tuple[str, Message]] = []
    ps = Pseudonymizer(b"k" * 32)
    s = Summarizer("gw1", lambda stream, m: out.append((stream, m)), ps, interval_s=10.0,
                   scores=lambda: {"b7": (3, None)})
    sample = _s("b7", "heart_rate", 80.0, 100.0)
    sample.patient = "PID-3-778899"  # an HL7 monitor names the patient; the config does not
    s.on_sample(sample)
    s.tick(0.0, 111.0)
    summary, scores = out[0][1], out[1][1]
    assert isinstance(summary, Summary) and isinstance(scores, Scores)
    assert summary.items[0].patient == scores.items[0].patient == ps.pseudonym("PID-3-778899")
