"""Per-patient clocks and a bounded reorder buffer: a replay that is right for any row order.

A recorded file may be grouped by patient (a hospital export), sorted by time, interleaved, or a
few seconds out of order. :class:`Reorderer` keeps one stream per patient:

- a patient's rows are released in canonical order, key (time, parameter rank, value text), once
  they are more than ``window_s`` older than the newest row seen for that patient; so rows moved
  by up to ``window_s`` come out exactly as if the file had been sorted;
- a row older than (newest row of that patient - ``window_s``) cannot be put in its place any
  more: it is counted as ``late`` (first line numbers kept) and never applied on a wrong clock;
- the same (time, parameter, value) twice is one reading: the copy is counted as ``duplicate``;
  two different values at the same time are both applied, in value order (deterministic);
- each patient's state advances only on that patient's rows: the consumer gets
  ``deliver(patient, t, param, raw, line)`` per row and ``finish(patient)`` at the end.

Memory: at most ``max(chunk, rows in window_s)`` rows buffered per patient, each about 150 bytes;
a 100-bed, 24-hour file (about 40 million rows at 5 numerics per second) needs 100 x 512 rows
(about 8 MB) of buffer, whatever the file's length or order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter

RANK = {"spo2_scale2": 0, "on_oxygen": 1, "consciousness": 2, "nibp_dia": 3, "nibp_mean": 4, "nibp_sys": 5,
        "heart_rate": 6, "pulse_rate": 7, "perfusion_index": 8, "spo2": 9, "resp_rate": 10, "temperature": 11}
Row = tuple[float, int, str, str, int, float]  # (t, rank, param, raw, line, value: the parsed raw or NaN)
Deliver = Callable[[str, float, str, str, int, float], None]


@dataclass
class OrderStats:
    late: int = 0
    late_lines: list[int] = field(default_factory=list)
    duplicates: int = 0
    max_buffered: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"late_rows": self.late, "late_lines": self.late_lines, "duplicate_rows": self.duplicates,
                "max_buffered_rows": self.max_buffered}


class _Stream:
    __slots__ = ("buf", "last", "newest")

    def __init__(self) -> None:
        self.buf: list[Row] = []
        self.newest = -math.inf
        self.last: Row | None = None  # last released row (duplicate check across releases)


class Reorderer:
    def __init__(self, deliver: Deliver, window_s: float = 10.0, chunk: int = 512) -> None:
        if window_s < 0:
            raise ValueError("window_s must be >= 0")
        self.deliver = deliver
        self.window_s = window_s
        self.chunk = chunk
        self.streams: dict[str, _Stream] = {}
        self.stats = OrderStats()

    def push(self, patient: str, t: float, param: str, raw: str, line: int, value: float = math.nan) -> bool:
        """Queue one row; False (counted) if it is too far back to be put in its place."""
        s = self.streams.get(patient)
        if s is None:
            s = self.streams[patient] = _Stream()
        if t > s.newest:
            s.newest = t
        elif t < s.newest - self.window_s:
            st = self.stats
            st.late += 1
            if len(st.late_lines) < 20:
                st.late_lines.append(line)
            return False
        buf = s.buf
        buf.append((t, RANK.get(param, 99), param, raw, line, value))
        if len(buf) >= self.chunk:
            self._release(patient, s, s.newest - self.window_s)
        return True

    def _release(self, patient: str, s: _Stream, before: float) -> None:
        buf = s.buf
        if len(buf) > self.stats.max_buffered:
            self.stats.max_buffered = len(buf)
        buf.sort(key=_key)
        k = len(buf)
        if before != math.inf:
            lo, hi = 0, len(buf)
            while lo < hi:  # first row with t >= before
                mid = (lo + hi) // 2
                if buf[mid][0] < before:
                    lo = mid + 1
                else:
                    hi = mid
            k = lo
        last = s.last
        deliver = self.deliver
        for i in range(k):
            r = buf[i]
            if last is not None and r[0] == last[0] and r[2] == last[2] and r[3] == last[3]:
                self.stats.duplicates += 1
                continue
            last = r
            deliver(patient, r[0], r[2], r[3], r[4], r[5])
        s.last = last
        del buf[:k]

    def finish(self, patient: str) -> None:
        """Release everything left for ``patient`` (end of file)."""
        s = self.streams.get(patient)
        if s is not None:
            self._release(patient, s, math.inf)

    def finish_all(self) -> list[str]:
        """Release every patient's rows (in patient order); returns the patients."""
        names = sorted(self.streams)
        for p in names:
            self.finish(p)
        return names


_key = itemgetter(0, 1, 3)  # (t, rank, raw): a total order, so any input order gives the same output
