"""What the uplink has published and the cloud has not yet receipted (contract v2), and when to re-send it.

Every record the uplink publishes is entered here (:meth:`Ledger.sent`). Its
broker PUBACK only starts the record's receipt timer (:meth:`Ledger.acked`);
the record leaves the outbox when a receipt from the ingest names its
(stream, seq) (:meth:`Ledger.receipt`). A record whose PUBACK never came
(the link dropped) is forgotten here and republished from the outbox on the
next connection.

Re-send policy (:meth:`Ledger.due`), per record, ``tries`` = re-sends so far:

* ``timeout_s * 2**tries`` after its PUBACK, if the cloud has since receipted a
  record published after it: the path works and this one was skipped (the
  broker lost it in a crash, a receipt was lost, a worker died between its
  write and its receipt);
* ``silence_s * 2**tries`` after its PUBACK in any case (capped at
  ``max_wait_s``): the cloud may be down with the record waiting in the
  broker, so re-sending sooner would only queue copies there.

A repeat is harmless (points are idempotent) and counted (``resent``). Nothing
here does I/O; the uplink calls it on its event loop.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from wire import messages


@dataclass(slots=True)
class Pending:
    rid: int  # outbox record id
    stream: str
    seq: int
    order: int  # publish order (the latest publish of this record)
    created: float  # wall time the record was appended to the outbox
    acked_at: float | None = None  # broker PUBACK of the latest publish; None while in flight
    tries: int = 0  # re-sends


class Ledger:
    def __init__(self, timeout_s: float = 5.0, silence_s: float = 300.0, max_wait_s: float = 1800.0) -> None:
        self.timeout_s = timeout_s
        self.silence_s = max(silence_s, timeout_s)
        self.max_wait_s = max(max_wait_s, self.silence_s)
        self._by_rid: dict[int, Pending] = {}
        self._by_stream: dict[str, dict[int, int]] = {}  # stream -> seq -> rid
        self._order = 0
        self.progress = 0  # highest publish order among receipted records
        self.resent = 0
        self.receipted = 0

    def __len__(self) -> int:
        return len(self._by_rid)

    def __contains__(self, rid: object) -> bool:
        return rid in self._by_rid

    def inflight(self) -> int:
        return sum(1 for p in self._by_rid.values() if p.acked_at is None)

    def sent(self, rid: int, stream: str, seq: int, created: float) -> None:
        """``rid`` (appended at wall time ``created``) was published: the first time, or a re-send."""
        self._order += 1
        p = self._by_rid.get(rid)
        if p is None:
            self._by_rid[rid] = Pending(rid, stream, seq, self._order, created)
            self._by_stream.setdefault(stream, {})[seq] = rid
            return
        p.order = self._order
        p.acked_at = None
        p.tries += 1
        self.resent += 1

    def acked(self, rid: int, now: float) -> bool:
        """The broker's PUBACK for ``rid``: start its receipt timer. False if it is no longer pending."""
        p = self._by_rid.get(rid)
        if p is None:
            return False
        p.acked_at = now
        return True

    def forget(self, rid: int) -> None:
        p = self._by_rid.pop(rid, None)
        if p is not None:
            seqs = self._by_stream.get(p.stream)
            if seqs is not None and seqs.get(p.seq) == rid:
                del seqs[p.seq]

    def clear(self) -> int:
        """Forget every pending record (another link carries them now): they are republished from the outbox."""
        n = len(self._by_rid)
        self._by_rid.clear()
        self._by_stream.clear()
        return n

    def unacked(self) -> list[int]:
        """The link dropped: forget what is in flight without a PUBACK (republished from the outbox)."""
        gone = [p.rid for p in self._by_rid.values() if p.acked_at is None]
        for rid in gone:
            self.forget(rid)
        return gone

    def receipt(self, stream: str, ranges: list[tuple[int, int]]) -> list[int]:
        """Records of ``stream`` the cloud says it wrote (``ranges`` ascending, inclusive): removed, returned."""
        seqs = self._by_stream.get(stream)
        if not seqs or not ranges:
            return []
        firsts = [r[0] for r in ranges]
        done: list[int] = []
        for seq, rid in list(seqs.items()):
            i = bisect.bisect_right(firsts, seq) - 1
            if i >= 0 and seq <= ranges[i][1]:
                p = self._by_rid.pop(rid)
                del seqs[seq]
                self.progress = max(self.progress, p.order)
                done.append(rid)
        self.receipted += len(done)
        return done

    def apply(self, receipt: messages.Receipt) -> list[int]:
        """Every record a (decoded, this gateway's) receipt names: removed, returned."""
        done: list[int] = []
        for sr in receipt.streams:
            done.extend(self.receipt(sr.stream, sorted([(sr.low, sr.upto), *sr.above])))
        return done

    def due(self, now: float) -> list[int]:
        """Records to re-send now (PUBACKed, unreceipted, past their wait; see the module docstring)."""
        out = []
        for p in self._by_rid.values():
            if p.acked_at is None:
                continue
            waited = now - p.acked_at
            scale = 2 ** min(p.tries, 16)
            if (waited >= min(self.timeout_s * scale, self.max_wait_s) and p.order < self.progress) or \
                    waited >= min(self.silence_s * scale, self.max_wait_s):
                out.append(p.rid)
        return out

    def oldest_age(self, wall_now: float) -> float:
        """Seconds since the oldest unreceipted record was appended (0 if none)."""
        return max(0.0, wall_now - min(p.created for p in self._by_rid.values())) if self._by_rid else 0.0
