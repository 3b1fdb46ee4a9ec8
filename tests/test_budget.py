"""The cellular budget governor (fake clock): accounting, levels, held lanes, month roll-over, persistence."""

from __future__ import annotations

import calendar
from pathlib import Path

from edge.budget import LANE_BULK, LANE_NORMAL, Budget, BudgetConfig, wire_bytes


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


T0 = calendar.timegm((2026, 3, 10, 12, 0, 0))


def test_only_metered_bytes_count_and_the_hour_slides() -> None:
    c = Clock(T0)
    b = Budget(BudgetConfig(bytes_per_hour=10_000, bytes_per_month=10**9), c)
    b.charge(4000, metered=False)
    b.charge(3000, metered=True)
    assert b.used_hour() == 3000 and b.free_total == 4000 and b.month_used == 3000
    c.t += 1800
    b.charge(2000, metered=True)
    c.t += 1801
    assert b.used_hour() == 2000  # the first charge left the trailing hour
    assert wire_bytes("pg/v1/s/g/alarms", b"x" * 100, 40) == 16 + 100 + 7 + 40


def test_levels_rise_with_demand_and_fall_back() -> None:
    c = Clock(T0)
    cfg = BudgetConfig(bytes_per_hour=36_000, bytes_per_month=10**9, window_s=600, check_s=60)
    b = Budget(cfg, c)
    levels = []
    for _ in range(10):  # 20 bytes/s = 72 kB/h projected: twice the allowance
        for _ in range(60):
            c.t += 1
            b.charge(20, metered=True)
        b.update()
        levels.append(b.level)
    assert levels[-1] == 3 and levels == sorted(levels)
    assert b.summary_interval(60) == 600 and b.raw_every() == 0
    assert b.held_lanes(metered=True) >= {LANE_BULK} and b.held_lanes(metered=False) == frozenset()
    for _ in range(20):  # quiet: 2 bytes/s
        for _ in range(60):
            c.t += 1
            b.charge(2, metered=True)
        b.update()
    assert b.level == 0 and b.summary_interval(60) == 60 and b.raw_every() == 1


def test_hard_cap_holds_everything_but_alarms() -> None:
    c = Clock(T0)
    b = Budget(BudgetConfig(bytes_per_hour=5000, bytes_per_month=10**9), c)
    b.charge(3700, metered=True)
    assert b.held_lanes(True) == frozenset()
    b.charge(50, metered=True)  # 75 % of the hour: the last quarter is kept for alarms and notices
    assert b.held_lanes(True) == frozenset({LANE_NORMAL, LANE_BULK})  # lane 0 (alarms, notices) never held
    c.t += 3601
    assert b.held_lanes(True) == frozenset()


def test_month_allowance_and_rollover(tmp_path: Path) -> None:
    c = Clock(calendar.timegm((2026, 4, 30, 23, 0, 0)))  # one hour left in April
    state = tmp_path / "budget.json"
    b = Budget(BudgetConfig(bytes_per_hour=64 * 1024, bytes_per_month=100_000), c, state)
    b.charge(90_000, metered=True)
    assert b.allowance_per_hour() == 10_000  # what is left of the month, spread over what is left of it
    b.save()
    assert Budget(BudgetConfig(bytes_per_hour=64 * 1024, bytes_per_month=100_000), c, state).month_used == 90_000
    c.t += 3600  # May
    b.charge(10, metered=True)
    assert b.month_used == 10 and b.allowance_per_hour() == (100_000 - 10) // (31 * 24)  # paced over May
    state.write_text("{not json")
    assert Budget(BudgetConfig(), c, state).month_used == 0  # unreadable state: logged, starts at 0
