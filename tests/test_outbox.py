"""Unit tests of the SQLite outbox: sequence numbers, lanes, deletion, quota and gaps."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.outbox import LANE_ALARMS, LANE_BULK, LANE_NORMAL, Outbox, OutboxClosed, _ranges
from tests.uplink_fixtures import alarm, raw, summary
from wire import codec, messages, topics


def test_sequences_are_per_stream_and_survive_a_restart(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", "gw1")
    assert [ob.append("bulk", raw(i)) for i in range(3)] == [1, 2, 3]
    assert ob.append("alarms", alarm(0)) == 1
    ob.close()
    ob = Outbox(tmp_path / "o.sqlite", "gw1")
    assert ob.peek_seq("bulk") == 4
    assert ob.append("bulk", raw(9)) == 4
    assert ob.append("alarms", alarm(1)) == 2
    assert ob.flush(5)
    recs = ob.read(100)
    assert ob.backlog() == 6
    msg = codec.decode(next(r.payload for r in recs if r.stream == "bulk" and r.seq == 4))
    assert (msg.gw, msg.seq) == ("gw1", 4)
    ob.close()


def test_sequence_numbers_of_acknowledged_records_are_not_reused(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", "gw1")
    for i in range(5):
        ob.append("bulk", raw(i))
    assert ob.flush(5)
    ob.delete([r.id for r in ob.read(100)])
    ob.close()
    ob = Outbox(tmp_path / "o.sqlite", "gw1")
    assert ob.backlog() == 0
    assert ob.append("bulk", raw(5)) == 6
    ob.close()


def test_read_serves_alarms_first_then_summaries_then_bulk(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", "gw1")
    ob.append("bulk", raw(0))
    ob.append("summaries", summary(0))
    ob.append("alarms", alarm(0))
    ob.append("bulk", raw(1))
    ob.append("alarms", alarm(1))
    assert ob.flush(5)
    lanes = [r.lane for r in ob.read(10)]
    assert lanes == [LANE_ALARMS, LANE_ALARMS, LANE_NORMAL, LANE_BULK, LANE_BULK]
    first = ob.read(2)
    assert [r.stream for r in first] == ["alarms", "alarms"]
    after = {LANE_ALARMS: max(r.id for r in first)}
    assert [r.stream for r in ob.read(10, after=after)] == ["summaries", "bulk", "bulk"]
    ob.close()


def test_append_does_not_wait_for_the_disk(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", "gw1")
    locker = sqlite3.connect(tmp_path / "o.sqlite", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # the writer thread now blocks on the database
    seqs = [ob.append("bulk", raw(i)) for i in range(200)]  # returns at once regardless
    assert seqs == list(range(1, 201))
    assert ob.backlog() == 200
    assert not ob.flush(timeout=0.3)
    locker.execute("ROLLBACK")
    locker.close()
    assert ob.flush(timeout=10)
    assert len(ob.read(1000)) == 200
    ob.close()


def test_unknown_stream_and_closed_outbox_are_refused(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", "gw1")
    with pytest.raises(topics.TopicError):
        ob.append("video", raw(0))
    ob.close()
    with pytest.raises(OutboxClosed):
        ob.append("bulk", raw(0))


def _gaps(ob: Outbox) -> list[messages.Gap]:
    out = []
    for r in ob.read(100_000):
        m = codec.decode(r.payload)
        if isinstance(m, messages.Gap):
            out.append(m)
    return out


def test_quota_drops_oldest_bulk_first_and_records_the_gap(tmp_path: Path) -> None:
    size = len(codec.encode(raw(0)))
    ob = Outbox(tmp_path / "o.sqlite", "gw1", quota_bytes=size * 100)
    for i in range(300):
        ob.append("bulk", raw(i))
    for i in range(5):
        ob.append("alarms", alarm(i))
        ob.append("summaries", summary(i))
    assert ob.flush(10)
    kept = ob.read(100_000)
    bulk_kept = sorted(r.seq for r in kept if r.stream == "bulk")
    assert sorted(r.seq for r in kept if r.stream == "alarms") == [1, 2, 3, 4, 5]
    assert sorted(r.seq for r in kept if r.stream == "summaries") == [1, 2, 3, 4, 5]
    gaps = _gaps(ob)
    dropped = sorted(s for g in gaps for s in range(g.first_seq, g.last_seq + 1))
    assert all(g.stream == "bulk" and g.reason == "quota" and g.count == g.last_seq - g.first_seq + 1 for g in gaps)
    assert sorted(dropped + bulk_kept) == list(range(1, 301))  # each number kept or reported, never both
    assert max(dropped) < min(bulk_kept)
    assert ob.dropped == len(dropped) and ob.backlog_bytes() <= size * 100 + 2000
    ob.close()


def test_quota_never_drops_alarms(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", "gw1", quota_bytes=1000)
    for i in range(100):
        ob.append("alarms", alarm(i))
    ob.append("bulk", raw(0))
    assert ob.flush(10)
    kept = ob.read(100_000)
    assert sorted(r.seq for r in kept if r.stream == "alarms") == list(range(1, 101))
    assert not [r for r in kept if r.stream == "bulk"]
    assert ob.backlog_bytes() > 1000  # over quota rather than lose an alarm
    ob.close()


def test_in_flight_records_are_not_dropped(tmp_path: Path) -> None:
    size = len(codec.encode(raw(0)))
    ob = Outbox(tmp_path / "o.sqlite", "gw1", quota_bytes=size * 20)
    for i in range(10):
        ob.append("bulk", raw(i))
    assert ob.flush(5)
    first = ob.read(3)
    ob.mark_inflight([r.id for r in first])
    for i in range(10, 60):
        ob.append("bulk", raw(i))
    assert ob.flush(5)
    kept = {r.seq for r in ob.read(1000) if r.stream == "bulk"}
    assert {1, 2, 3} <= kept and 4 not in kept
    ob.close()


def test_ranges_groups_contiguous_numbers_per_stream() -> None:
    got = _ranges([("bulk", 5), ("bulk", 3), ("bulk", 4), ("bulk", 9), ("events", 2)])
    assert sorted(got) == [("bulk", 3, 5, 3), ("bulk", 9, 9, 1), ("events", 2, 2, 1)]


def test_read_marks_atomically_skips_excluded_and_gap_reports_ride_the_alarm_lane(tmp_path: Path) -> None:
    size = len(codec.encode(raw(0)))
    ob = Outbox(tmp_path / "o.sqlite", "gw1", quota_bytes=size * 20)
    for i in range(10):
        ob.append("bulk", raw(i))
    assert ob.flush(5)
    cursors: dict[int, int] = {}
    first = ob.read(3, exclude={1}, after=cursors, mark=True)  # id 1 skipped, the cursor moves past it
    assert [r.id for r in first] == [2, 3, 4] and cursors[LANE_BULK] == 4
    assert [r.id for r in ob.read(2, after=cursors)] == [5, 6]
    for i in range(10, 60):
        ob.append("bulk", raw(i))
    assert ob.flush(5)
    kept = ob.read(1000)
    assert {2, 3, 4} <= {r.seq for r in kept if r.stream == "bulk"}  # marked by the read: never dropped
    gaps = [r for r in kept if r.stream == "events"]
    assert gaps and all(r.lane == LANE_ALARMS for r in gaps)  # a gap report is never dropped itself
    assert ob.read_ids([2, 999]) == [r for r in kept if r.id == 2]
    # a record the quota is deleting in a commit the reader could not see yet is left out of a marking read
    victim = next(r for r in kept if r.stream == "bulk" and r.id not in {2, 3, 4})
    ob._doomed[victim.id] = ob._commits + 1
    assert victim.id not in {r.id for r in ob.read(1000, mark=True)}
    ob.close()


def test_outbox_stamps_its_contract_version(tmp_path: Path) -> None:
    v1 = Outbox(tmp_path / "v1.sqlite", "gw1", wire_version=messages.V1)
    v1.append("bulk", raw(0))
    assert v1.flush(5)
    assert codec.decode(v1.read(1)[0].payload).v == messages.V1
    v1.close()
    with pytest.raises(ValueError):
        Outbox(tmp_path / "v9.sqlite", "gw1", wire_version=9)
