"""Training windows and labels from a synthetic scenario.

The model's input comes from the one feature spec in clinical/features.py (its vectorised form), the
same code whose streaming form the gateway runs; this module only adds what training needs on top:
the scenario's samples as arrays, and the labels.
"""

from __future__ import annotations

import numpy as np

from clinical.features import bucket_rows
from cloud.training.scenarios import Scenario


def buckets(sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """(bucket end times in epoch seconds, rows (n_buckets, N_FEATURES)) for the whole scenario."""
    return bucket_rows(sc.start + sc.t, sc.values, sc.quality)


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
