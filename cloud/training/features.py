"""Model inputs from a scenario, computed exactly as the gateway's bed state computes them.

This mirrors clinical/bedstate.py with numpy (cloud/ does not import edge/; the
model input is the contract between them, and tests/test_anomaly_features.py
checks that both give the same windows for the same samples):

- one-minute buckets aligned to the epoch minute; a bucket's value is the mean
  of the valid samples in it;
- an empty bucket carries the last bucket value forward while the bucket with
  data ended at most CARRY_S before, else it is missing (value 0, mask 0);
- values are normalised (x - centre) / spread, followed by the 0/1 masks;
- the window for bucket k holds buckets k-WINDOW+1 .. k (zeros before the
  first sample).
"""

from __future__ import annotations

import math

import numpy as np

from cloud.training.scenarios import Scenario

MODEL_PARAMS = ("heart_rate", "spo2", "resp_rate", "nibp_sys", "temperature")
CARRY_S = (120.0, 120.0, 120.0, 3600.0, 4 * 3600.0)
NORM = ((80.0, 20.0), (95.0, 5.0), (16.0, 6.0), (120.0, 25.0), (37.0, 1.0))
BUCKET_S = 60.0
WINDOW = 60
N_FEATURES = 2 * len(MODEL_PARAMS)


def buckets(sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """(bucket end times in epoch seconds, rows (n_buckets, N_FEATURES)) for the whole scenario."""
    abs_t = sc.start + sc.t
    first = math.floor(abs_t[0] / BUCKET_S)
    idx = (np.floor(abs_t / BUCKET_S) - first).astype(np.int64)
    nb = int(idx[-1]) + 1
    ends = (first + 1 + np.arange(nb)) * BUCKET_S
    m = len(MODEL_PARAMS)
    rows = np.zeros((nb, N_FEATURES), np.float32)
    for j, p in enumerate(MODEL_PARAMS):
        v = sc.values[p]
        ok = (sc.quality[p] == 0) & ~np.isnan(v)
        s = np.bincount(idx[ok], weights=v[ok], minlength=nb)
        c = np.bincount(idx[ok], minlength=nb)
        has = c > 0
        mean = np.where(has, s / np.maximum(c, 1), np.nan)
        # last bucket index with data at or before each bucket
        last = np.where(has, np.arange(nb), -1)
        last = np.maximum.accumulate(last)
        carry_ok = (last >= 0) & ((np.arange(nb) - last) * BUCKET_S <= CARRY_S[j])
        val = np.where(carry_ok, mean[np.maximum(last, 0)], np.nan)
        centre, spread = NORM[j]
        avail = ~np.isnan(val)
        rows[:, j] = np.where(avail, (val - centre) / spread, 0.0)
        rows[:, m + j] = avail
    return ends, rows


def windows(rows: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Windows ending at bucket indices ``at`` -> (len(at), WINDOW, N_FEATURES), zero-padded at the start."""
    padded = np.concatenate([np.zeros((WINDOW - 1, rows.shape[1]), rows.dtype), rows])
    view = np.lib.stride_tricks.sliding_window_view(padded, (WINDOW, rows.shape[1]))[:, 0]
    return np.ascontiguousarray(view[at])


def labels(sc: Scenario, ends: np.ndarray, visible: float = 0.15) -> np.ndarray:
    """1 deteriorating, 0 stable, -1 ambiguous (excluded from training).

    Positive once the deterioration's progress p(t) reached ``visible`` (15 % of its full effect),
    until the end; between onset and that point the change is too small to call either way.
    """
    y = np.zeros(len(ends), np.int8)
    if sc.onset_s is None or sc.event_s is None:
        return y
    rel = ends - sc.start
    d = sc.event_s - sc.onset_s
    y[rel >= sc.onset_s] = -1
    y[rel >= sc.onset_s + d * visible ** (1.0 / sc.shape)] = 1
    return y
