"""Per-bed state: latest valid value, invalid samples ignored, windows and trends."""

from __future__ import annotations

import math

import numpy as np

from clinical.bedstate import HR, SPO2, BedState, trend
from clinical.features import WINDOW
from clinical.sample import Quality, Sample


def s(p: str, v: float, t: float, q: Quality = Quality.VALID) -> Sample:
    return Sample("b", p, v, "", t, t, q)


def test_latest_valid_value_and_quality_flags() -> None:
    st = BedState("b")
    assert st.update(s("heart_rate", 80, 1000.0)) == HR
    for q in (Quality.ARTIFACT, Quality.SENSOR_OFF, Quality.QUESTIONABLE, Quality.CALIBRATING, Quality.DEMO,
              Quality.TEST, Quality.UNAVAILABLE):
        assert st.update(s("heart_rate", 200, 1001.0, q)) == -1
    assert st.update(s("heart_rate", math.nan, 1002.0)) == -1
    assert st.value[HR] == 80 and st.t_valid[HR] == 1000.0 and st.last_seen[HR] == 1002.0
    assert st.update(s("perfusion_index", 3.0, 1003.0)) == -1  # not tracked for scores
    assert math.isnan(st.fresh(SPO2, 1003.0, 60.0))
    assert st.fresh(HR, 1030.0, 60.0) == 80 and math.isnan(st.fresh(HR, 1061.0, 60.0))


def test_pulse_rate_stands_in_for_heart_rate() -> None:
    st = BedState("b")
    st.update(s("pulse_rate", 88, 500.0))
    assert st.heart_rate(500.0, 60.0) == 88
    st.update(s("heart_rate", 90, 501.0))
    assert st.heart_rate(501.0, 60.0) == 90


def test_minute_buckets_mean_carry_and_expiry() -> None:
    st = BedState("b")
    t0 = 60_000.0  # on a minute boundary
    for k in range(60):
        st.update(s("heart_rate", 70 + (k % 2) * 10, t0 + k))  # mean 75
    st.roll(t0 + 60)
    w = np.zeros((WINDOW, 10), np.float32)
    st.window(w)
    assert w[-1, 0] == np.float32((75 - 80) / 20) and w[-1, 5] == 1.0
    st.roll(t0 + 180)  # two empty minutes: carried (<= 120 s)
    st.window(w)
    assert w[-1, 5] == 1.0 and w[-1, 0] == np.float32(-0.25)
    st.roll(t0 + 240)  # third empty minute: expired
    st.window(w)
    assert w[-1, 5] == 0.0 and w[-1, 0] == 0.0
    assert st.buckets_filled == 4 and st.window_ready


def test_long_gap_keeps_only_recent_buckets() -> None:
    st = BedState("b")
    st.update(s("temperature", 38.0, 0.0))
    st.roll(10 * 3600.0)  # ten hours later: beyond the 4 h carry, the whole window is missing
    w = np.ones((WINDOW, 10), np.float32)
    st.window(w)
    assert not w.any()


def test_trend_arrows() -> None:
    st = BedState("b")
    st.update(s("heart_rate", 80, 0.0))
    st.roll(60.0)
    st.update(s("heart_rate", 100, 61.0))
    assert trend(st, HR) == 1
    st.update(s("heart_rate", 60, 62.0))
    assert trend(st, HR) == -1
    st.update(s("heart_rate", 81, 63.0))
    assert trend(st, HR) == 0
