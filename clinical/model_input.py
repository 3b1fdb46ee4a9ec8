"""The vitals-anomaly model's input, built from the per-minute buckets of clinical/features.py: ONE builder
that the gateway (per bed, one bucket at a time) and training (over a patient's bucket rows) both call.

Two input kinds, named in a model's feature spec (``input`` in the manifest's ``features``):

- ``window`` (vitals-anomaly 1.x): the last WINDOW buckets as they are, (WINDOW, N_FEATURES);
- ``baseline`` (2.x): the same window plus, per model channel, its deviation from the patient's OWN
  baseline, (WINDOW, N_FEATURES + n_params). The baseline of a channel is a running mean of its
  available buckets that have LEFT the window (the first BASELINE_TAU buckets equally weighted, then
  an exponential average with time constant BASELINE_TAU buckets), so the hour the model looks at never
  pulls the baseline it is compared with; before any bucket has left the window, the baseline is the
  mean of the window's available buckets. A channel missing in a bucket has deviation 0.

Streaming form: :class:`Baseline` (``leave(row)`` in O(1) for each bucket scrolling out of a bed's
window, called by clinical.features.MinuteWindow) and :func:`build` (writes one input from a window and a
baseline). Training calls the same two over a patient's rows (:func:`inputs_for`).
"""

from __future__ import annotations

import numpy as np

from clinical.features import INPUT_KINDS, MODEL_PARAMS, N_FEATURES, SPEC, WINDOW

BASELINE_TAU = SPEC.baseline_tau  # buckets (4 h)
M = len(MODEL_PARAMS)


def n_channels(kind: str) -> int:
    if kind == "window":
        return N_FEATURES
    if kind == "baseline":
        return N_FEATURES + M
    raise ValueError(f"input kind must be one of {', '.join(INPUT_KINDS)}, not {kind!r}")


class Baseline:
    """The patient's own baseline per model channel (normalised units), from buckets that left the window."""

    __slots__ = ("count", "mean")

    def __init__(self) -> None:
        self.mean = np.zeros(M, np.float32)
        self.count = np.zeros(M, np.float32)

    def leave(self, row: np.ndarray) -> None:
        """A bucket row (N_FEATURES: values then masks) scrolls out of the window."""
        mask = row[M:]
        if not mask.any():
            return
        self.count += mask
        alpha = mask / np.maximum(np.minimum(self.count, BASELINE_TAU), 1.0)
        self.mean += alpha * (row[:M] - self.mean)


def build(kind: str, window: np.ndarray, baseline: Baseline, out: np.ndarray) -> None:
    """Write one model input (WINDOW, n_channels(kind)) into ``out`` from a window (WINDOW, N_FEATURES)."""
    out[:, :N_FEATURES] = window
    if kind == "window":
        return
    vals, mask = window[:, :M], window[:, M:]
    have = baseline.count > 0
    base = baseline.mean
    if not have.all():
        n = mask.sum(axis=0)
        own = (vals * mask).sum(axis=0) / np.maximum(n, 1.0)
        base = np.where(have, base, own)
    out[:, N_FEATURES:] = (vals - base) * mask


def inputs_for(kind: str, rows: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Inputs for the windows ending at bucket indices ``at`` (increasing) of one patient's bucket rows.

    Exactly what a gateway computes for that bed when bucket ``at[i]`` closes: the same :class:`Baseline`
    fed the rows that left the window, and :func:`build`.
    """
    from clinical.features import windows

    at = np.asarray(at, np.int64)
    out = np.zeros((len(at), WINDOW, n_channels(kind)), np.float32)
    if len(at) == 0:
        return out
    if np.any(np.diff(at) < 0):
        raise ValueError("inputs_for: bucket indices must increase")
    win = windows(rows, at)
    b = Baseline()
    left = 0  # rows[:left] have left the window
    for i, k in enumerate(at.tolist()):
        while left <= k - WINDOW:
            b.leave(rows[left])
            left += 1
        build(kind, win[i], b, out[i])
    return out


def explain(kind: str, x: np.ndarray, recent: int = 10) -> str:
    """Why, in words: the channels deviating most from the patient's baseline over the last ``recent``
    buckets of one input (``baseline`` kind; the change over the window for ``window``)."""
    from clinical.features import NORM

    names = {"heart_rate": "HR", "spo2": "SpO2", "resp_rate": "resp", "nibp_sys": "NIBP sys",
             "temperature": "temp"}
    parts: list[tuple[float, str]] = []
    for j, p in enumerate(MODEL_PARAMS):
        mask = x[-recent:, M + j]
        if not mask.any():
            continue
        spread = NORM[j][1]
        if kind == "baseline":
            dev = float((x[-recent:, N_FEATURES + j] * mask).sum() / mask.sum())
        else:
            first = x[:recent, M + j]
            if not first.any():
                continue
            dev = float((x[-recent:, j] * mask).sum() / mask.sum() - (x[:recent, j] * first).sum() / first.sum())
        if abs(dev) >= 0.5:
            parts.append((abs(dev), f"{names.get(p, p)} {dev * spread:+.0f}" if p != "temperature"
                          else f"temp {dev * spread:+.1f}"))
    parts.sort(reverse=True)
    what = "vs own baseline" if kind == "baseline" else "over the hour"
    return (", ".join(s for _, s in parts[:3]) + f" {what}") if parts else "no single parameter stands out"
