"""A bed's trends for the last hours, kept on the gateway: one row per closed minute bucket.

Fed from the minute buckets the anomaly model already builds (clinical/features.py): when a bucket
closes, :meth:`MinuteHistory.close` appends the minute's means of the model channels (heart rate,
SpO2, resp rate, systolic NIBP, temperature) and the bed's latest NEWS2 total. The anomaly sweep
records each score it computes (:meth:`MinuteHistory.score`, also once a minute). Nothing runs per
sample: a row is a small tuple appended once a minute per bed to a bounded deque, so memory stays at
``minutes`` rows per bed whatever the ward does. No cloud is needed to draw the nurse page's
sparklines: :meth:`series` is the JSON the page asks for when a bed is opened.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from clinical.features import BUCKET_S, MODEL_PARAMS

HISTORY_MINUTES = 6 * 60  # six hours of one-minute rows per bed


class MinuteHistory:
    """Bounded per-minute history of one bed (the newest ``minutes`` rows)."""

    __slots__ = ("rows", "scores")

    def __init__(self, minutes: int = HISTORY_MINUTES) -> None:
        # (bucket end on the samples' clock, channel means (NaN: no data), NEWS2 total or -1)
        self.rows: deque[tuple[float, tuple[float, ...], int]] = deque(maxlen=minutes)
        self.scores: deque[tuple[float, float]] = deque(maxlen=minutes)  # (when scored, anomaly score)

    def close(self, end: float, means: tuple[float, ...], news2: int | None) -> None:
        self.rows.append((end, means, -1 if news2 is None else news2))

    def score(self, at: float, value: float) -> None:
        self.scores.append((at, value))

    def recent_scores(self, n: int) -> list[float]:
        """The last ``n`` anomaly scores, oldest first (the tile's small trend)."""
        k = len(self.scores)
        return [round(s, 3) for _, s in list(self.scores)[max(0, k - n):]]

    def series(self, now: float, hours: float) -> dict[str, Any]:
        """JSON for the bed view: per channel a list of [minutes ago, value] (oldest first), NEWS2 and
        anomaly the same way. Values are rounded for the screen; minutes without data are left out."""
        since = now - hours * 3600.0
        out: dict[str, list[list[float]]] = {p: [] for p in MODEL_PARAMS}
        news2: list[list[float]] = []
        for end, means, n2 in self.rows:
            if end < since:
                continue
            ago = round((now - end) / 60.0, 1)
            for p, v in zip(MODEL_PARAMS, means, strict=True):
                if not math.isnan(v):
                    out[p].append([ago, round(v, 1)])
            if n2 >= 0:
                news2.append([ago, n2])
        anomaly = [[round((now - t) / 60.0, 1), round(s, 3)] for t, s in self.scores if t >= since]
        return {"hours": hours, "bucket_s": BUCKET_S, "minutes_kept": self.rows.maxlen,
                "series": out, "news2": news2, "anomaly": anomaly}
