"""The gateway's durable outbox: every uplink message is on disk before it is sent.

Storage is one SQLite database in WAL mode (why SQLite and not a segment log:
see docs/uplink-ingest.md, "Outbox"). :meth:`Outbox.append` runs on the event
loop and never waits on disk: it assigns the record's sequence number, encodes
the message and hands it to a writer thread, which commits whatever has queued
up in one transaction (group commit). The uplink reads records lane by lane
(alarms, then summaries/events/status, then bulk) and deletes each one only
after the broker's PUBACK.

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
learns what is missing.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
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
    ) -> None:
        topics.check_id("gateway", gateway)
        self.path = Path(path)
        self.gateway = gateway
        self.quota_bytes = quota_bytes
        self.max_commit = max_commit
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

    def read(self, limit: int, exclude: set[int] | None = None, after: dict[int, int] | None = None) -> list[Record]:
        """Oldest records in lane order; ``after`` maps lane -> last id already taken. Blocking: call in a thread."""
        out: list[Record] = []
        after = after or {}
        with self._reader_lock:
            for lane in LANES:
                if len(out) >= limit:
                    break
                rows = self._reader.execute(
                    "SELECT id, lane, stream, seq, created, payload FROM records WHERE lane = ? AND id > ? "
                    "ORDER BY id LIMIT ?",
                    (lane, after.get(lane, 0), limit - len(out)),
                ).fetchall()
                out.extend(Record(*r) for r in rows if not exclude or r[0] not in exclude)
        return out

    def mark_inflight(self, ids: list[int]) -> None:
        with self._state:
            self._inflight.update(ids)

    def release(self, ids: list[int]) -> None:
        """Forget in-flight marks without deleting (connection lost before PUBACK)."""
        with self._state:
            self._inflight.difference_update(ids)

    def delete(self, ids: list[int]) -> None:
        """Delete records after their PUBACK (the writer thread does it). Never waits on disk."""
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
            except sqlite3.Error as exc:
                self.commit_errors += 1
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
        db = self._db
        excess = stored - self.quota_bytes
        with self._state:
            inflight = set(self._inflight)
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
        if not victims:
            return 0, 0, []
        for i in range(0, len(victims), 500):
            chunk = [v[0] for v in victims[i : i + 500]]
            db.execute(f"DELETE FROM records WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        gap_rows: list[tuple[str, int, bytes]] = []
        now = time.time()
        for stream, first, last, count in _ranges([(v[1], v[2]) for v in victims]):
            gseq = self.reserve_seq(GAP_STREAM)
            gap = messages.Gap(v=messages.VERSION, gw=self.gateway, seq=gseq, t=time.time_ns(), stream=stream,
                               first_seq=first, last_seq=last, count=count, reason="quota")
            payload = codec.encode(gap)
            db.execute("INSERT INTO records (lane, stream, seq, created, payload) VALUES (?, ?, ?, ?, ?)",
                       (STREAM_LANE[GAP_STREAM], GAP_STREAM, gseq, now, payload))
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
