"""The vitals-anomaly model's input: ONE feature spec, in a streaming form and a vectorised form.

The gateway (per-bed state, one sample at a time), replay, training and evaluation all compute the
model's input from this module, and a model's manifest names the spec it was trained on
(``features`` in manifest.json); :func:`check_manifest_spec` refuses a model whose spec this code
cannot reproduce, naming the difference.

The spec (:data:`SPEC`):

- channels: heart rate, SpO2, respiration rate, systolic NIBP, temperature, each normalised
  ``(x - centre) / spread``, followed by one 0/1 availability mask per channel;
- one-minute buckets whose edges are multiples of ``bucket_s`` on the clock the samples carry
  (receive time on a gateway, the recorded time in a replay or a training scenario); a bucket's value
  is the mean of the valid samples in it (any quality flag, or NaN, is not valid);
- an empty bucket carries the previous bucket value forward while the bucket that had data ended at
  most ``carry_s`` before (continuous numerics 2 min, NIBP 1 h, temperature 4 h), else the channel is
  missing (value 0, mask 0);
- fallback: a valid pleth pulse rate stands in for heart rate when no valid ECG heart rate arrived
  within ``fallback_after_s`` before it (Masimo and Nonin oximeters send only pulse rate); at equal
  timestamps the heart rate counts as earlier;
- the window for bucket k holds buckets k - window + 1 .. k, oldest first (zeros before the first).

Streaming form: :class:`MinuteWindow` (O(1) per sample, no allocation; the base class of
clinical.bedstate.BedState). Vectorised form: :func:`bucket_rows` and :func:`windows` with numpy.
tests/test_features.py checks both give the same windows, fallback and alignment included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FeatureSpec:
    """What a vitals-anomaly model's input means; written into (and checked against) its manifest."""

    params: tuple[str, ...] = ("heart_rate", "spo2", "resp_rate", "nibp_sys", "temperature")
    carry_s: tuple[float, ...] = (120.0, 120.0, 120.0, 3600.0, 4 * 3600.0)
    norm: tuple[tuple[float, float], ...] = ((80.0, 20.0), (95.0, 5.0), (16.0, 6.0), (120.0, 25.0), (37.0, 1.0))
    bucket_s: float = 60.0
    window: int = 60
    masks: bool = True
    fallback: tuple[tuple[str, str], ...] = (("heart_rate", "pulse_rate"),)
    fallback_after_s: float = 10.0
    alignment: str = "epoch-multiple"
    input: str = "window"  # what the model reads from the buckets: clinical/model_input.py INPUT_KINDS
    baseline_tau: float = 240.0  # buckets; the own-baseline time constant of input "baseline"

    @property
    def n_features(self) -> int:
        return 2 * len(self.params)

    def to_manifest(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: _jsonable(v) for k, v in d.items()}

    @classmethod
    def from_manifest(cls, d: Mapping[str, Any]) -> FeatureSpec:
        """Parse a manifest's ``features`` object; raises ValueError naming the key that is wrong."""
        if not isinstance(d, Mapping):
            raise ValueError("features: not an object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"features: unknown key(s) {', '.join(unknown)}")
        d = {**_OPTIONAL, **d}  # keys added after 1.x manifests were signed: their 1.x meaning
        missing = sorted(known - set(d))
        if missing:
            raise ValueError(f"features: missing key(s) {', '.join(missing)}")
        try:
            return cls(
                params=tuple(str(p) for p in d["params"]),
                carry_s=tuple(float(x) for x in d["carry_s"]),
                norm=tuple((float(c), float(s)) for c, s in d["norm"]),
                bucket_s=float(d["bucket_s"]),
                window=int(d["window"]),
                masks=bool(d["masks"]),
                fallback=tuple((str(a), str(b)) for a, b in d["fallback"]),
                fallback_after_s=float(d["fallback_after_s"]),
                alignment=str(d["alignment"]),
                input=str(d["input"]),
                baseline_tau=float(d["baseline_tau"]),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"features: {exc}") from None

    def differences(self, other: FeatureSpec) -> list[str]:
        """Human-readable differences in the buckets, ``key: ours != theirs`` (empty when equal); the input
        kind a model reads from them is checked by :func:`check_manifest_spec`."""
        out = []
        for k in self.__dataclass_fields__:
            if k in _OPTIONAL:
                continue
            a, b = getattr(self, k), getattr(other, k)
            if a != b:
                out.append(f"{k}: gateway {_jsonable(a)} != model {_jsonable(b)}")
        return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    return v


_OPTIONAL: dict[str, Any] = {"input": "window", "baseline_tau": 240.0}
INPUT_KINDS = ("window", "baseline")
SPEC = FeatureSpec()
MODEL_PARAMS = SPEC.params
CARRY_S = SPEC.carry_s
NORM = SPEC.norm
BUCKET_S = SPEC.bucket_s
WINDOW = SPEC.window
N_FEATURES = SPEC.n_features
FALLBACK_AFTER_S = SPEC.fallback_after_s


def check_manifest_spec(features: Mapping[str, Any] | None) -> FeatureSpec:
    """The model's spec, or ValueError unless its buckets are exactly the ones this code computes and its
    input kind is one this code builds (clinical/model_input.py)."""
    if not features:
        raise ValueError("manifest has no feature spec (features): cannot tell what the model expects")
    theirs = FeatureSpec.from_manifest(features)
    diff = SPEC.differences(theirs)
    if theirs.input not in INPUT_KINDS:
        diff.append(f"input: gateway builds {list(INPUT_KINDS)}, model reads {theirs.input!r}")
    elif theirs.input == "baseline" and theirs.baseline_tau != SPEC.baseline_tau:
        diff.append(f"baseline_tau: gateway {SPEC.baseline_tau} != model {theirs.baseline_tau}")
    if diff:
        raise ValueError("feature spec differs: " + "; ".join(diff))
    return theirs


# -- streaming form ---------------------------------------------------------------------------------------
class MinuteWindow:
    """The last WINDOW minute buckets of the model channels for one bed, built one sample at a time."""

    __slots__ = ("_bucket_cnt", "_bucket_end", "_bucket_sum", "_carry", "_carry_t", "_ring", "_ring_pos",
                 "buckets_filled", "window_ready")

    def __init__(self) -> None:
        m = len(MODEL_PARAMS)
        self._bucket_sum = [0.0] * m
        self._bucket_cnt = [0] * m
        self._bucket_end = math.nan
        self._carry: list[float] = [math.nan] * m
        self._carry_t: list[float] = [-math.inf] * m
        self._ring = np.zeros((WINDOW, N_FEATURES), np.float32)
        self._ring_pos = 0
        self.buckets_filled = 0
        self.window_ready = False  # a new bucket closed since the model last scored this bed

    def _bucket_add(self, j: int, v: float) -> None:
        self._bucket_sum[j] += v
        self._bucket_cnt[j] += 1

    def roll(self, now: float) -> None:
        """Close every bucket that ended at or before ``now`` (called per valid sample and from tick)."""
        if self._bucket_end != self._bucket_end:  # first sample: align buckets to the minute
            self._bucket_end = (math.floor(now / BUCKET_S) + 1) * BUCKET_S
            return
        if now < self._bucket_end:
            return
        k = math.floor((now - self._bucket_end) / BUCKET_S) + 1  # buckets that ended
        self._close_bucket()  # the only one that can hold samples
        k -= 1
        if k > WINDOW:  # long gap: the oldest empty buckets would scroll out of the window anyway
            self._bucket_end += (k - WINDOW) * BUCKET_S
            self.buckets_filled += k - WINDOW
            k = WINDOW
        for _ in range(k):
            self._close_bucket()

    def _closed(self) -> None:
        """Hook for subclasses: a bucket just closed."""

    def _leaving(self, row: np.ndarray) -> None:
        """Hook for subclasses: ``row`` (the oldest bucket, all zeros before the window filled) scrolls out."""

    def _close_bucket(self) -> None:
        end = self._bucket_end
        row = self._ring[self._ring_pos]
        self._leaving(row)
        m = len(MODEL_PARAMS)
        for j in range(m):
            c = self._bucket_cnt[j]
            if c:
                v = self._bucket_sum[j] / c
                self._carry[j] = v
                self._carry_t[j] = end
            elif end - self._carry_t[j] <= CARRY_S[j]:
                v = self._carry[j]
            else:
                v = math.nan
            if v == v:
                centre, spread = NORM[j]
                row[j] = (v - centre) / spread
                row[m + j] = 1.0
            else:
                row[j] = 0.0
                row[m + j] = 0.0
            self._bucket_sum[j] = 0.0
            self._bucket_cnt[j] = 0
        self._closed()
        self._ring_pos = (self._ring_pos + 1) % WINDOW
        self._bucket_end = end + BUCKET_S
        self.buckets_filled += 1
        self.window_ready = True

    def window(self, out: np.ndarray) -> None:
        """Copy the last WINDOW buckets, oldest first, into ``out`` (shape (WINDOW, N_FEATURES))."""
        p = self._ring_pos
        out[: WINDOW - p] = self._ring[p:]
        out[WINDOW - p :] = self._ring[:p]


# -- vectorised form --------------------------------------------------------------------------------------
def _valid(values: Mapping[str, np.ndarray], quality: Mapping[str, np.ndarray], p: str) -> np.ndarray:
    v = values.get(p)
    if v is None:
        return np.zeros(0, bool)
    ok: np.ndarray = (quality[p] == 0) & ~np.isnan(v)
    return ok


def bucket_rows(t: np.ndarray, values: Mapping[str, np.ndarray],
                quality: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every bucket from the first sample to the last: (bucket end times, rows (n, N_FEATURES)).

    ``t`` is sample time in seconds on the samples' clock; ``values[p]`` / ``quality[p]`` are aligned
    with it (NaN or a non-zero quality where parameter p has no valid reading at that instant). A
    ``pulse_rate`` series, when present, feeds the heart-rate channel by the spec's fallback rule.
    """
    t = np.asarray(t, np.float64)
    first = math.floor(t[0] / BUCKET_S)
    idx = (np.floor(t / BUCKET_S) - first).astype(np.int64)
    nb = int(idx[-1]) + 1
    ends = (first + 1 + np.arange(nb)) * BUCKET_S
    m = len(MODEL_PARAMS)
    rows = np.zeros((nb, N_FEATURES), np.float32)
    fallback = dict(SPEC.fallback)
    for j, p in enumerate(MODEL_PARAMS):
        ok = _valid(values, quality, p)
        vals = values[p][ok] if len(ok) else np.zeros(0)
        where = idx[ok] if len(ok) else np.zeros(0, np.int64)
        alt = fallback.get(p)
        if alt is not None and alt in values:
            ok_alt = _valid(values, quality, alt)
            t_primary = t[ok] if len(ok) else np.zeros(0)
            t_alt = t[ok_alt]
            # latest valid primary sample at or before each fallback sample (ties: primary first)
            k = np.searchsorted(t_primary, t_alt, side="right") - 1
            last = np.full(len(t_alt), -np.inf)
            if len(t_primary):
                last = np.where(k >= 0, t_primary[np.maximum(k, 0)], -np.inf)
            use = t_alt - last > FALLBACK_AFTER_S
            vals = np.concatenate([vals, values[alt][ok_alt][use]])
            where = np.concatenate([where, idx[ok_alt][use]])
        s = np.bincount(where, weights=vals, minlength=nb)
        c = np.bincount(where, minlength=nb)
        has = c > 0
        mean = np.where(has, s / np.maximum(c, 1), np.nan)
        last_b = np.maximum.accumulate(np.where(has, np.arange(nb), -1))  # last bucket with data
        carry_ok = (last_b >= 0) & ((np.arange(nb) - last_b) * BUCKET_S <= CARRY_S[j])
        val = np.where(carry_ok, mean[np.maximum(last_b, 0)], np.nan)
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
