"""The cellular data budget: bytes per hour and per month, and what the gateway does to stay inside.

``[uplink.budget]`` (:class:`BudgetConfig`). Only bytes sent on a *metered*
link count (``[[uplink.links]] metered = true``, the cellular one); Wi-Fi at
the station is free. A byte count is the MQTT PUBLISH (topic + payload + 7 bytes
of MQTT framing) plus ``overhead_bytes`` per message for TCP/IP and TLS (an
estimate: 40 bytes), charged when the message is handed to the link.

The governor is feedback with hysteresis, re-evaluated every ``check_s``:
``projected`` = metered bytes of the last ``window_s`` (or of the time since
start, when shorter) scaled to an hour. The allowance per hour is
``bytes_per_hour``, or less when the month's remaining bytes spread over its
remaining hours are fewer. Above 85 % of the allowance the level goes up one
step (two above 200 %), below 30 % it comes down one (one decision per
``check_s``). The level sets:

| level | summary interval | raw numerics produced | lanes held on a metered link |
|---|---|---|---|
| 0 | base | all (if ``[summaries] raw``) | none |
| 1 | base x 2 | 1 in 10 | none |
| 2 | base x 5 | none | bulk |
| 3 | base x 10 | none | bulk |

and, whatever the level, once the trailing hour's metered bytes reach 75 % of
the allowance (the last quarter is kept for alarms and notices) the summaries
lane is held too: it waits in the outbox (nothing is dropped; the disk quota
still applies) until the hour frees up or a free link is back. **Alarms and
pre-arrival notices (lane 0) are never held and never throttled**: they are
charged, and they count against what is left for the rest.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from pydantic import Field

from runtime.configbase import Section
from runtime.logs import get_logger

log = get_logger("edge.budget")

LANE_NORMAL, LANE_BULK = 1, 2  # edge.outbox lanes (alarms = 0 is never held)
SUMMARY_FACTOR = (1, 2, 5, 10)
RAW_EVERY = (1, 10, 0, 0)  # keep 1 raw sample in N (0 = none)
HARD_CAP = 0.75  # the rest of the hour is kept for alarms and notices
MQTT_FRAMING = 7  # fixed header, remaining length, topic length, packet id, property length


class BudgetConfig(Section):
    bytes_per_hour: Annotated[int, Field(ge=1024)] = 64 * 1024
    bytes_per_month: Annotated[int, Field(ge=1024)] = 100 * 1024 * 1024
    overhead_bytes: Annotated[int, Field(ge=0, le=1500)] = 40
    window_s: Annotated[float, Field(gt=0, le=3600)] = 600.0
    check_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    metered_status_interval_s: Annotated[float, Field(ge=1, le=3600)] = 300.0


def wire_bytes(topic: str, payload: bytes, overhead: int) -> int:
    return len(topic) + len(payload) + MQTT_FRAMING + overhead


class Budget:
    def __init__(self, cfg: BudgetConfig, clock: Callable[[], float] = time.time,
                 state_path: Path | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.state_path = state_path
        self.level = 0
        self.level_changes = 0
        self._events: deque[tuple[float, int]] = deque()  # (t, bytes) of the trailing hour, metered only
        self._hour_total = 0
        self.metered_total = 0
        self.free_total = 0
        self._month = self._month_key(clock())
        self.month_used = 0
        self._last_check = clock()
        self._started = clock()
        self._load()

    @staticmethod
    def _month_key(t: float) -> str:
        return time.strftime("%Y-%m", time.gmtime(t))

    def _load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        try:
            data = json.loads(self.state_path.read_text())
            if data.get("month") == self._month:
                self.month_used = int(data.get("used", 0))
        except (OSError, ValueError, TypeError):
            log.warning("budget_state_unreadable", path=str(self.state_path))

    def save(self) -> None:
        if self.state_path is None:
            return
        tmp = self.state_path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps({"month": self._month, "used": self.month_used}))
            tmp.replace(self.state_path)

    # ---- accounting -----------------------------------------------------------------------------------
    def charge(self, n: int, metered: bool) -> None:
        if not metered:
            self.free_total += n
            return
        now = self.clock()
        month = self._month_key(now)
        if month != self._month:
            self._month, self.month_used = month, 0
        self.month_used += n
        self.metered_total += n
        self._events.append((now, n))
        self._hour_total += n

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - 3600.0:
            self._hour_total -= self._events.popleft()[1]

    def used_hour(self) -> int:
        self._trim(self.clock())
        return self._hour_total

    def used_window(self) -> int:
        now = self.clock()
        return sum(n for t, n in self._events if t > now - self.cfg.window_s)

    def allowance_per_hour(self) -> int:
        now = self.clock()
        tm = time.gmtime(now)
        days = calendar.monthrange(tm.tm_year, tm.tm_mon)[1]
        month_end = calendar.timegm((tm.tm_year, tm.tm_mon, days, 23, 59, 59)) + 1
        hours_left = max(1.0, (month_end - now) / 3600.0)
        left = max(0, self.cfg.bytes_per_month - self.month_used)
        return int(min(self.cfg.bytes_per_hour, left / hours_left))

    # ---- decisions ------------------------------------------------------------------------------------
    def update(self) -> bool:
        """Re-evaluate the level (at most once per ``check_s``); True when it changed."""
        now = self.clock()
        if now - self._last_check < self.cfg.check_s:
            return False
        self._last_check = now
        allowance = self.allowance_per_hour()
        span = min(self.cfg.window_s, max(now - self._started, self.cfg.check_s))  # a young window: what it saw
        projected = self.used_window() * 3600.0 / span
        old = self.level
        top = len(SUMMARY_FACTOR) - 1
        if projected > 0.85 * allowance and self.level < top:
            self.level = min(top, self.level + (2 if projected > 2 * allowance else 1))
        elif projected < 0.3 * allowance and self.level > 0:
            self.level -= 1
        if self.level != old:
            self.level_changes += 1
            log.info("budget_level", level=self.level, projected_bytes_per_hour=int(projected), allowance=allowance)
            self.save()
        return self.level != old

    def held_lanes(self, metered: bool) -> frozenset[int]:
        if not metered:
            return frozenset()
        if self.used_hour() >= HARD_CAP * self.allowance_per_hour():
            return frozenset({LANE_NORMAL, LANE_BULK})
        return frozenset({LANE_BULK}) if self.level >= 2 else frozenset()

    def summary_interval(self, base_s: float) -> float:
        return base_s * SUMMARY_FACTOR[self.level]

    def raw_every(self) -> int:
        return RAW_EVERY[self.level]

    def status(self) -> dict[str, object]:
        return {"level": self.level, "bytes_hour": self.used_hour(), "bytes_month": self.month_used,
                "budget_bytes_per_hour": self.cfg.bytes_per_hour, "budget_bytes_per_month": self.cfg.bytes_per_month,
                "allowance_per_hour": self.allowance_per_hour(), "metered_total": self.metered_total,
                "free_total": self.free_total}
