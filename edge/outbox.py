"""The gateway's durable outbox: every uplink message is on disk before it is sent.

Storage is one SQLite database in WAL mode (why SQLite and not a segment log:
see docs/uplink-ingest.md, "Outbox"). :meth:`Outbox.append` runs on the event
loop and never waits on disk: it assigns the record's sequence number, encodes
the message and hands it to a writer thread, which commits whatever has queued
up in one transaction (group commit). The uplink reads records lane by lane
(alarms, then summaries/events/status, then bulk) and deletes each one only
once the cloud receipted it (contract v2; a v1 uplink: at the broker's PUBACK).
Records the uplink has published and not yet forgotten are "in flight" here
(:meth:`Outbox.mark_inflight`): the quota never drops them.

Durability policy (``sync``):

* ``"full"`` (default): SQLite ``synchronous=FULL``; every group commit fsyncs
  the WAL. A record is durable against kill -9 AND power loss once its commit
  returned; what can be lost is what sat in the writer's queue, i.e. the
  messages appended during the last commit (typically < 10 ms of data).
* ``"normal"``: ``synchronous=NORMAL``; kill -9 loses the same (tiny) window,
  but a power loss can also roll back the transactions since the last WAL
  checkpoint (SQLite default: ~1000 pages).

Sequence numbers are committed in the same transaction as their records, so a
restarted gateway continues after the last *durable* number: a number is never
used for two different records (lost-before-commit numbers are simply reused).

Quota policy: when the stored payload bytes exceed ``quota_bytes`` the writer
deletes the oldest records of the bulk lane, then of the middle lane; alarms
are never dropped (the outbox grows past its quota rather than lose one).
Every dropped range of sequence numbers is written, in the same transaction,
as a :class:`wire.messages.Gap` record on the ``events`` stream, so the cloud
learns what is missing. Gap records travel in the alarms lane: never dropped
themselves (else a dropped gap report would hide which numbers it described).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runtime.logs import get_logger
from wire import codec, messages, topics

log = get_logger("edge.outbox")

LANE_ALARMS, LANE_NORMAL, LANE_BULK = 0, 1, 2
LANES = (LANE_ALARMS, LANE_NORMAL, LANE_BULK)
STREAM_LANE = {"alarms": LANE_ALARMS, "summaries": LANE_NORMAL, "events": LANE_NORMAL, "status": LANE_NORMAL,
               "bulk": LANE_BULK, "notices": LANE_ALARMS}  # pre-arrival notices ride with the alarms
GAP_STREAM = "events"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lane INTEGER NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_lane ON records (lane, id);
CREATE TABLE IF NOT EXISTS streams (stream TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Record:
    id: int
    lane: int
    stream: str
    seq: int
    created: float
    payload: bytes


class OutboxClosed(RuntimeError):
    pass


class Outbox:
    def __init__(
        self,
        path: Path,
        gateway: str,
        quota_bytes: int = 512 * 1024 * 1024,
        sync: Literal["full", "normal"] = "full",
        max_commit: int = 5000,
        wire_version: int = messages.VERSION,
    ) -> None:
        topics.check_id("gateway", gateway)
        self.path = Path(path)
        self.gateway = gateway
        self.quota_bytes = quota_bytes
        self.max_commit = max_commit
        if wire_version not in messages.SUPPORTED:
            raise ValueError(f"unsupported contract version {wire_version}")
        self.wire_version = wire_version  # stamped on every appended message (v1: a gateway without receipts)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._connect(sync)
        self._db.executescript(_SCHEMA)
        self._seq_lock = threading.Lock()
        self._next_seq: dict[str, int] = dict(self._db.execute("SELECT stream, next_seq FROM streams").fetchall())
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM records").fetchone()
        # counters (read from the loop; written by the writer thread under _state)
        self._state = threading.Lock()
        self._count = int(row[0])
        self._bytes = int(row[1])
        self.appended = 0
        self.committed = 0
        self.deleted = 0
        self.dropped = 0
        self.dropped_bytes = 0
        self.gaps = 0
        self.commit_errors = 0
        self._inflight: set[int] = set()
        # _flight guards _inflight and _doomed: the quota picks and deletes its victims under it, and a read
        # that marks records in flight filters what the quota doomed in a commit it could not see yet
        self._flight = threading.Lock()
        self._doomed: dict[int, int] = {}  # record id -> number of the commit deleting it
        self._commits = 0
        self._queue: deque[tuple[int, str, int, float, bytes]] = deque()
        self._deletes: deque[int] = deque()
        self._wake = threading.Condition()
        self._idle = threading.Condition()
        self._pending = 0  # appended but not committed, guarded by _idle
        self._closing = False
        self.on_commit: Callable[[], None] | None = None  # called in the writer thread after a commit
        self._reader = self._connect(sync)
        self._reader_lock = threading.Lock()
        self._thread = threading.Thread(target=self._writer, name=f"outbox-writer-{gateway}", daemon=True)
        self._thread.start()

    def _connect(self, sync: str) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        db.execute("PRAGMA busy_timeout=5000")
        return db

    # ---- producer side (event loop) -------------------------------------------------

    def reserve_seq(self, stream: str) -> int:
        """Next sequence number of ``stream`` (persisted with the next commit)."""
        with self._seq_lock:
            seq = self._next_seq.get(stream, 1)
            self._next_seq[stream] = seq + 1
            return seq

    def peek_seq(self, stream: str) -> int:
        """The number the next append to ``stream`` will get."""
        with self._seq_lock:
            return self._next_seq.get(stream, 1)

    def append(self, stream: str, msg: messages.Message) -> int:
        """Assign ``msg.seq`` and ``msg.gw``, encode and queue for the writer. Never waits on disk."""
        if self._closing:
            raise OutboxClosed("outbox is closed")
        lane = STREAM_LANE.get(stream)
        if lane is None:
            raise topics.TopicError(f"unknown stream {stream!r}")
        seq = self.reserve_seq(stream)
        msg.seq = seq
        msg.gw = self.gateway
        msg.v = self.wire_version
        payload = codec.encode(msg)
        with self._idle:
            self._pending += 1
        with self._wake:
            self._queue.append((lane, stream, seq, time.time(), payload))
            self._wake.notify()
        self.appended += 1
        return seq

    def flush(self, timeout: float | None = None) -> bool:
        """Block (in a thread, never on the loop) until everything appended is committed."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    # ---- uplink side -------------------------------------------------------------------

    def read(self, limit: int, exclude: Container[int] | None = None,
             after: dict[int, int] | None = None, mark: bool = False) -> list[Record]:
        """Oldest records in lane order, skipping ids in ``exclude``; ``after`` maps lane -> last id already
        scanned and is advanced in place past everything read or skipped. ``mark``: mark them in flight
        atomically against the quota (a record the quota is deleting is left out). Blocking: in a thread."""
        out: list[Record] = []
        after = {} if after is None else after
        with self._reader_lock:
            seen = self._commits
            for lane in LANES:
                while len(out) < limit:
                    want = limit - len(out)
                    rows = self._reader.execute(
                        "SELECT id, lane, stream, seq, created, payload FROM records WHERE lane = ? AND id > ? "
                        "ORDER BY id LIMIT ?",
                        (lane, after.get(lane, 0), want),
                    ).fetchall()
                    if not rows:
                        break
                    after[lane] = rows[-1][0]
                    out.extend(Record(*r) for r in rows if exclude is None or r[0] not in exclude)
                    if len(rows) < want:
                        break
            if mark:
                with self._flight:
                    out = [r for r in out if r.id not in self._doomed]
                    self._inflight.update(r.id for r in out)
                    for rid in [rid for rid, n in self._doomed.items() if n <= seen]:
                        del self._doomed[rid]  # committed before this read began: invisible from now on
        return out

    def read_ids(self, ids: list[int]) -> list[Record]:
        """The records with these ids that are still stored (re-sends). Blocking: call in a thread."""
        out: list[Record] = []
        with self._reader_lock:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                out.extend(Record(*r) for r in self._reader.execute(
                    "SELECT id, lane, stream, seq, created, payload FROM records WHERE id IN "
                    f"({','.join('?' * len(chunk))}) ORDER BY id", chunk).fetchall())
        return out

    def mark_inflight(self, ids: list[int]) -> None:
        with self._flight:
            self._inflight.update(ids)

    def release(self, ids: list[int]) -> None:
        """Forget in-flight marks without deleting (connection lost before PUBACK)."""
        with self._flight:
            self._inflight.difference_update(ids)

    def delete(self, ids: list[int]) -> None:
        """Delete records once delivered (receipt, or PUBACK for v1); the writer thread does it. Never waits."""
        with self._wake:
            self._deletes.extend(ids)
            self._wake.notify()

    def backlog(self) -> int:
        """Records stored and queued, not yet acknowledged by the broker.

        ``_pending`` (appended, not yet committed) drops only after ``_count`` rose, so a batch being
        committed is never missing from the sum (it may be counted twice for an instant)."""
        with self._idle:
            pending = self._pending
        return self._count + pending

    def backlog_bytes(self) -> int:
        return self._bytes

    def oldest_unsent_age(self) -> float:
        """Seconds since the oldest unacknowledged record was appended (0 if none). Blocking: small query."""
        with self._reader_lock:  # ids grow with time: the first id of each lane is its oldest record
            firsts = [self._reader.execute("SELECT created FROM records WHERE lane = ? ORDER BY id LIMIT 1",
                                           (lane,)).fetchone() for lane in LANES]
        row = (min((f[0] for f in firsts if f is not None), default=None),)
        if row[0] is None:
            with self._wake:
                first = self._queue[0][3] if self._queue else None
            return 0.0 if first is None else max(0.0, time.time() - first)
        return max(0.0, time.time() - float(row[0]))

    def close(self) -> None:
        """Commit what is queued, stop the writer thread, close the database."""
        if self._closing:
            return
        self._closing = True
        with self._wake:
            self._wake.notify()
        self._thread.join()
        self._reader.close()
        self._db.close()

    # ---- writer thread -----------------------------------------------------------------

    def _writer(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._deletes and not self._closing:
                    self._wake.wait()
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_commit))]
                deletes = list(self._deletes)
                self._deletes.clear()
                closing = self._closing and not self._queue
            if batch or deletes:
                self._commit(batch, deletes)
            if closing:
                return

    def _commit(self, batch: list[tuple[int, str, int, float, bytes]], deletes: list[int]) -> None:
        db = self._db
        attempts = 0
        while True:
            attempts += 1
            try:
                db.execute("BEGIN IMMEDIATE")
                removed_bytes = 0
                removed = 0
                if deletes:
                    for i in range(0, len(deletes), 500):
                        chunk = deletes[i : i + 500]
                        marks = ",".join("?" * len(chunk))
                        r = db.execute(
                            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM records WHERE id IN ({marks})",
                            chunk,
                        ).fetchone()
                        db.execute(f"DELETE FROM records WHERE id IN ({marks})", chunk)
                        removed += int(r[0])
                        removed_bytes += int(r[1])
                db.executemany(
                    "INSERT INTO records (lane, stream, seq, created, payload) VALUES (?, ?, ?, ?, ?)", batch
                )
                added_bytes = sum(len(b[4]) for b in batch)
                streams: dict[str, int] = {}
                for _, stream, seq, _, _ in batch:
                    streams[stream] = max(streams.get(stream, 0), seq + 1)
                dropped_n, dropped_b, gap_rows = self._enforce_quota(self._bytes + added_bytes - removed_bytes)
                for stream, seq, _payload in gap_rows:
                    streams[stream] = max(streams.get(stream, 0), seq + 1)
                db.executemany(
                    "INSERT INTO streams (stream, next_seq) VALUES (?, ?) "
                    "ON CONFLICT(stream) DO UPDATE SET next_seq = MAX(next_seq, excluded.next_seq)",
                    list(streams.items()),
                )
                db.execute("COMMIT")
                self._commits += 1
            except sqlite3.Error as exc:
                self.commit_errors += 1
                with self._flight:  # the quota's victims of this transaction stay
                    for rid in [rid for rid, n in self._doomed.items() if n > self._commits]:
                        del self._doomed[rid]
                log.error("outbox_commit_failed", error=str(exc), records=len(batch))
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if self._closing and attempts >= 5:
                    log.error("outbox_records_lost_at_close", records=len(batch))
                    with self._idle:
                        self._pending -= len(batch)
                        self._idle.notify_all()
                    return
                time.sleep(0.5)  # disk full or locked: retry; the loop keeps appending into memory
                continue
            break
        with self._state:
            self._count += len(batch) + len(gap_rows) - removed - dropped_n
            self._bytes += added_bytes + sum(len(g[2]) for g in gap_rows) - removed_bytes - dropped_b
            self.committed += len(batch)
            self.deleted += removed
        with self._idle:
            self._pending -= len(batch)
            self._idle.notify_all()
        hook = self.on_commit
        if hook is not None and (batch or gap_rows):
            hook()

    def _enforce_quota(self, stored: int) -> tuple[int, int, list[tuple[str, int, bytes]]]:
        """Inside the writer's transaction: drop oldest bulk, then middle lane, until under quota."""
        if stored <= self.quota_bytes:
            return 0, 0, []
        with self._flight:  # see read(mark=True)
            victims, freed = self._drop_victims(stored - self.quota_bytes)
        if not victims:
            return 0, 0, []
        return self._report_gaps(victims, freed)

    def _drop_victims(self, excess: int) -> tuple[list[tuple[int, str, int, int]], int]:
        """Under _flight, in the writer's transaction: delete the oldest records not in flight (bulk, then the
        middle lane) until ``excess`` bytes are freed."""
        db = self._db
        inflight = self._inflight
        victims: list[tuple[int, str, int, int]] = []
        freed = 0
        for lane in (LANE_BULK, LANE_NORMAL):
            cur = db.execute(
                "SELECT id, stream, seq, LENGTH(payload) FROM records WHERE lane = ? ORDER BY id", (lane,)
            )
            for rid, stream, seq, size in cur:
                if rid in inflight:
                    continue
                victims.append((rid, stream, seq, size))
                freed += size
                if freed >= excess:
                    break
            cur.close()
            if freed >= excess:
                break
        for i in range(0, len(victims), 500):
            chunk = [v[0] for v in victims[i : i + 500]]
            db.execute(f"DELETE FROM records WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        for v in victims:
            self._doomed[v[0]] = self._commits + 1
        return victims, freed

    def _report_gaps(self, victims: list[tuple[int, str, int, int]],
                     freed: int) -> tuple[int, int, list[tuple[str, int, bytes]]]:
        """Inside the writer's transaction: one Gap record per contiguous dropped range."""
        db = self._db
        gap_rows: list[tuple[str, int, bytes]] = []
        now = time.time()
        for stream, first, last, count in _ranges([(v[1], v[2]) for v in victims]):
            gseq = self.reserve_seq(GAP_STREAM)
            gap = messages.Gap(v=self.wire_version, gw=self.gateway, seq=gseq, t=time.time_ns(), stream=stream,
                               first_seq=first, last_seq=last, count=count, reason="quota")
            payload = codec.encode(gap)
            db.execute("INSERT INTO records (lane, stream, seq, created, payload) VALUES (?, ?, ?, ?, ?)",
                       (LANE_ALARMS, GAP_STREAM, gseq, now, payload))  # never dropped, sent first
            gap_rows.append((GAP_STREAM, gseq, payload))
            log.warning("outbox_quota_dropped", stream=stream, first_seq=first, last_seq=last, count=count)
        self.dropped += len(victims)
        self.dropped_bytes += freed
        self.gaps += len(gap_rows)
        return len(victims), freed, gap_rows


def _ranges(items: list[tuple[str, int]]) -> list[tuple[str, int, int, int]]:
    """Contiguous (stream, first, last, count) ranges of dropped sequence numbers."""
    out: list[tuple[str, int, int, int]] = []
    by_stream: dict[str, list[int]] = {}
    for stream, seq in items:
        by_stream.setdefault(stream, []).append(seq)
    for stream, seqs in by_stream.items():
        seqs.sort()
        first = prev = seqs[0]
        for s in seqs[1:]:
            if s != prev + 1:
                out.append((stream, first, prev, prev - first + 1))
                first = s
            prev = s
        out.append((stream, first, prev, prev - first + 1))
    return out
