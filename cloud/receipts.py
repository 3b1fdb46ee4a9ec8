"""Delivery receipts, ingest side: what this worker has written, per gateway and stream, sent back compactly.

After InfluxDB accepted a batch, the worker marks each v2 message of it
(:meth:`ReceiptBook.written`; a :class:`wire.messages.Gap` also marks the
range the gateway reported as dropped). :meth:`ReceiptBook.due` then builds at
most one :class:`wire.messages.Receipt` per gateway per ``interval_s``
(coalescing: the first after a quiet spell goes at once), carrying, per
stream, the runs of written sequence numbers as ``low..upto`` plus the
ranges above.

A receipt is cumulative: a run stays in the receipts while it keeps growing
(the usual case, one contiguous run per stream), so a lost receipt is covered
by the next. A run that stopped changing (a hole below newer numbers: another
worker's share, or a number the broker lost) is repeated in ``repeat``
receipts and then forgotten, which bounds memory and receipt size. Receipts
only ever name numbers this worker wrote; a gateway that misses one re-sends
the record after its timeout, and the rewrite (idempotent points) is
receipted again. Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wire import codec, messages, topics

# Every uplink stream: an ambulance keeps its positions (``Where``, on ``status``) and its pre-arrival notices
# in the outbox too. A ``Status`` message is never an outbox record (the uplink publishes it): not receipted.
RECEIPT_STREAMS = topics.STREAMS


class RangeSet:
    """Disjoint, non-adjacent runs ``[first, last]`` of integers, each with how many receipts carried it."""

    __slots__ = ("_firsts", "_runs")

    def __init__(self) -> None:
        self._runs: list[list[int]] = []  # [first, last, sent], ascending
        self._firsts: list[int] = []

    def __len__(self) -> int:
        return len(self._runs)

    def add(self, first: int, last: int) -> None:
        """Add ``first..last``; the run it joins is new again (``sent`` = 0)."""
        if last < first:
            return
        runs, firsts = self._runs, self._firsts
        if runs and first > runs[-1][1] + 1:  # the common case: a new number above everything
            runs.append([first, last, 0])
            firsts.append(first)
            return
        if runs and first >= runs[-1][0] and first <= runs[-1][1] + 1:  # extends the top run
            top = runs[-1]
            top[1] = max(top[1], last)
            top[2] = 0
            return
        i = bisect.bisect_right(firsts, first) - 1  # the run starting at or before first
        if i >= 0 and runs[i][1] + 1 >= first:
            lo = i
        else:
            lo = i + 1
        hi = lo
        new_first, new_last = first, last
        while hi < len(runs) and runs[hi][0] <= last + 1:
            new_first = min(new_first, runs[hi][0])
            new_last = max(new_last, runs[hi][1])
            hi += 1
        runs[lo:hi] = [[new_first, new_last, 0]]
        firsts[lo:hi] = [new_first]

    def take(self, repeat: int, limit: int) -> list[tuple[int, int]]:
        """The runs to put in the next receipt (at most ``limit``, the newest first chosen, returned
        ascending); counts them as sent and forgets runs that went out ``repeat`` times."""
        fresh = [r for r in self._runs if r[2] < repeat][-limit:] if limit > 0 else []
        for r in fresh:
            r[2] += 1
        keep = [r for r in self._runs if r[2] < repeat]
        if len(keep) != len(self._runs):
            self._runs = keep
            self._firsts = [r[0] for r in keep]
        return [(r[0], r[1]) for r in fresh]

    def trim(self, max_runs: int) -> None:
        """Memory bound: drop the lowest runs beyond ``max_runs``."""
        if len(self._runs) > max_runs:
            del self._runs[: len(self._runs) - max_runs]
            del self._firsts[: len(self._firsts) - max_runs]

    def runs(self) -> list[tuple[int, int]]:
        return [(r[0], r[1]) for r in self._runs]


@dataclass
class _Gateway:
    site: str
    streams: dict[str, RangeSet] = field(default_factory=dict)
    dirty: bool = False
    last_sent: float = float("-inf")
    last_written: float = 0.0


class ReceiptBook:
    """Per (site, gateway): the written numbers of each stream and when the last receipt went out."""

    def __init__(self, interval_s: float = 1.0, repeat: int = 3, max_runs: int = 4096,
                 max_ranges_per_receipt: int = 3000, forget_after_s: float = 900.0) -> None:
        self.interval_s = interval_s
        self.repeat = repeat
        self.max_runs = max_runs
        self.max_ranges = max_ranges_per_receipt  # bounds a receipt well under wire.codec.MAX_RECEIPT
        self.forget_after_s = forget_after_s
        self._gws: dict[tuple[str, str], _Gateway] = {}
        self.built = 0

    def __len__(self) -> int:
        return len(self._gws)

    def written(self, site: str, gateway: str, stream: str, first: int, last: int | None = None,
                now: float | None = None) -> None:
        """``first..last`` of ``stream`` is in InfluxDB (or dead-lettered for good, or reported as a gap)."""
        if stream not in RECEIPT_STREAMS:
            return
        key = (site, gateway)
        gw = self._gws.get(key)
        if gw is None:
            gw = self._gws[key] = _Gateway(site)
        rs = gw.streams.get(stream)
        if rs is None:
            rs = gw.streams[stream] = RangeSet()
        rs.add(first, first if last is None else last)
        rs.trim(self.max_runs)
        gw.dirty = True
        gw.last_written = time.monotonic() if now is None else now

    def mark(self, site: str, msg: messages.Message, stream: str, now: float | None = None) -> None:
        """Mark one accepted message; v1 messages (no receipts in contract v1) and ``Status`` are ignored."""
        if msg.v < 2 or isinstance(msg, messages.Status):
            return
        self.written(site, msg.gw, stream, msg.seq, now=now)
        if isinstance(msg, messages.Gap) and msg.last_seq >= msg.first_seq:
            self.written(site, msg.gw, msg.stream, msg.first_seq, msg.last_seq, now=now)

    def due(self, now: float | None = None) -> list[tuple[str, messages.Receipt]]:
        """(topic, receipt) for every gateway with news whose last receipt is ``interval_s`` old."""
        now = time.monotonic() if now is None else now
        out: list[tuple[str, messages.Receipt]] = []
        stale = []
        for (site, gwid), gw in self._gws.items():
            if not gw.dirty:
                if now - gw.last_written > self.forget_after_s:
                    stale.append((site, gwid))
                continue
            if now - gw.last_sent < self.interval_s:
                continue
            streams = []
            budget = self.max_ranges
            for name, rs in sorted(gw.streams.items()):
                runs = rs.take(self.repeat, budget)
                budget -= len(runs)
                if runs:
                    streams.append(messages.StreamReceipt(stream=name, low=runs[0][0], upto=runs[0][1],
                                                          above=runs[1:]))
            gw.dirty = False
            gw.last_sent = now
            if streams:
                self.built += 1
                out.append((topics.receipts(site, gwid), messages.Receipt(v=messages.VERSION, gw=gwid,
                                                                          t=time.time_ns(), streams=streams)))
        for key in stale:
            del self._gws[key]
        return out

    def next_due_in(self, now: float | None = None) -> float | None:
        """Seconds until the earliest pending receipt may go (None: nothing pending)."""
        now = time.monotonic() if now is None else now
        waits = [max(0.0, gw.last_sent + self.interval_s - now) for gw in self._gws.values() if gw.dirty]
        return min(waits) if waits else None


Mark = tuple[str, str, str, int, str, int, int]  # site, gateway, stream, seq, gap stream, gap first, gap last


def mark_of(site: str, msg: messages.Message, stream: str) -> Mark | None:
    """What to receipt once ``msg``'s points are written; None for v1 messages (no receipts in v1) and for
    ``Status`` (never an outbox record)."""
    if msg.v < 2 or isinstance(msg, messages.Status):
        return None
    if isinstance(msg, messages.Gap):
        return (site, msg.gw, stream, msg.seq, msg.stream, msg.first_seq, msg.last_seq)
    return (site, msg.gw, stream, msg.seq, "", 0, -1)


class ReceiptSender:
    """Marks written batches in a :class:`ReceiptBook` and publishes what is due (QoS 1) while connected."""

    def __init__(self, interval_s: float = 1.0, enabled: bool = True) -> None:
        self.book = ReceiptBook(interval_s=interval_s)
        self.enabled = enabled
        self.sent = 0
        self.failed = 0
        self.dropped = 0  # receipts a fault injection threw away (bench faults, tests)
        self.drop_next = 0
        self._news = asyncio.Event()

    def written(self, marks: list[Mark]) -> None:
        if not self.enabled or not marks:
            return
        now = time.monotonic()
        for site, gw, stream, seq, gap_stream, gap_first, gap_last in marks:
            self.book.written(site, gw, stream, seq, now=now)
            if gap_stream:
                self.book.written(site, gw, gap_stream, gap_first, gap_last, now=now)
        self._news.set()

    async def run(self, publish: Callable[[str, bytes], bool], lost: asyncio.Event) -> None:
        """Until ``lost``: publish due receipts; ``publish`` returns False if the client refused it."""
        while not lost.is_set():
            self._news.clear()
            for topic, receipt in self.book.due():
                if self.drop_next > 0:
                    self.drop_next -= 1
                    self.dropped += 1
                    continue
                if publish(topic, codec.encode_receipt(receipt)):
                    self.sent += 1
                else:
                    self.failed += 1
            wait = self.book.next_due_in()
            news = asyncio.ensure_future(self._news.wait())
            gone = asyncio.ensure_future(lost.wait())
            await asyncio.wait({news, gone}, timeout=1.0 if wait is None else wait,
                               return_when=asyncio.FIRST_COMPLETED)
            news.cancel()
            gone.cancel()
