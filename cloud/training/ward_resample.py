"""Post-process a replay CSV so it looks like a ward export rather than a 1 Hz device stream.

Real recordings are rarely 1 Hz: numerics are exported every 1 s, 5 s, 15 s or once a minute, the
interval wobbles, the export has gaps and duplicate rows, and values carry decimals. This module
takes any replay CSV (``timestamp, patient, parameter, value``, any row order) and writes another:

- the continuous numerics (heart_rate, pulse_rate, spo2, perfusion_index, resp_rate) of each patient
  are resampled: a per-patient base interval drawn from ``every_s`` (one value: a regular thinning),
  each interval jittered by +-``jitter`` of it; at each chosen time, every continuous parameter's row
  recorded at or just before it (within the interval) is kept, with its own timestamp and value;
- ``gap_per_h`` gaps of ``gap_s`` seconds per hour with no continuous numerics at all;
- ``duplicate_fraction`` of the rows written twice;
- ``decimals``: numbers written with that many decimals (None: as they were);
- NIBP, temperature and context rows are kept as they are;
- ``order``: grouped (by patient, then time), sorted (by time) or shuffled (grouped, rows moved by up
  to ``shuffle_s``).

Labels do not change (they are in epoch seconds). Pure file-to-file: no clinical code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONTINUOUS = frozenset({"heart_rate", "pulse_rate", "spo2", "perfusion_index", "resp_rate"})


@dataclass(frozen=True)
class Resample:
    every_s: tuple[float, ...] = (5.0,)
    jitter: float = 0.0
    gap_per_h: float = 0.0
    gap_s: tuple[float, float] = (300.0, 1200.0)
    duplicate_fraction: float = 0.0
    decimals: int | None = None
    order: str = "grouped"
    shuffle_s: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.every_s or min(self.every_s) <= 0:
            raise ValueError("every_s: one or more intervals > 0 s")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter: a fraction in [0, 1)")
        if not 0 <= self.duplicate_fraction <= 1:
            raise ValueError("duplicate_fraction: a fraction in [0, 1]")
        if self.order not in ("grouped", "sorted", "shuffled"):
            raise ValueError(f"order must be grouped, sorted or shuffled, not {self.order!r}")


Row = tuple[float, str, str, str]


def _times(rng: np.random.Generator, t0: float, t1: float, spec: Resample) -> np.ndarray:
    base = float(rng.choice(np.array(spec.every_s)))
    out = []
    t = t0 + float(rng.uniform(0, base))
    while t <= t1:
        out.append(t)
        t += base * (1.0 + float(rng.uniform(-spec.jitter, spec.jitter)))
    times = np.array(out)
    if spec.gap_per_h > 0 and len(times):
        keep = np.ones(len(times), bool)
        hours = (t1 - t0) / 3600.0
        for _ in range(int(rng.poisson(spec.gap_per_h * hours))):
            s = float(rng.uniform(t0, t1))
            keep &= ~((times >= s) & (times < s + float(rng.uniform(*spec.gap_s))))
        times = times[keep]
    return times


def _fmt(raw: str, decimals: int | None) -> str:
    if decimals is None or not raw:
        return raw
    try:
        x = float(raw)
    except ValueError:
        return raw
    return raw if not math.isfinite(x) else f"{x:.{decimals}f}"


def resample_rows(per: dict[str, dict[str, list[tuple[float, str]]]], spec: Resample) -> list[Row]:
    """``per``: per patient, per parameter, (time, raw value) rows in time order (alarm_eval.read_rows)."""
    rng = np.random.default_rng([spec.seed, 11])
    out: list[Row] = []
    for patient in sorted(per):
        mine = sorted(((t, patient, par, raw) for par, rs in per[patient].items() for t, raw in rs),
                      key=lambda r: r[0])
        cont: dict[str, list[Row]] = {}
        for r in mine:
            if r[2] in CONTINUOUS:
                cont.setdefault(r[2], []).append(r)
            else:
                out.append((r[0], r[1], r[2], _fmt(r[3], spec.decimals) if r[2] in ("nibp_sys", "nibp_dia",
                                                                                 "temperature") else r[3]))
        if not cont:
            continue
        t0 = min(v[0][0] for v in cont.values())
        t1 = max(v[-1][0] for v in cont.values())
        times = _times(rng, t0, t1, spec)
        base = max(spec.every_s)
        for rs in cont.values():
            ts = np.array([r[0] for r in rs])
            k = np.searchsorted(ts, times, side="right") - 1
            ok = (k >= 0) & (times - ts[np.maximum(k, 0)] < base)
            for j in np.unique(k[ok]).tolist():
                r = rs[j]
                out.append((r[0], r[1], r[2], _fmt(r[3], spec.decimals)))
    if spec.duplicate_fraction > 0:
        dup = rng.random(len(out)) < spec.duplicate_fraction
        out += [r for r, d in zip(out, dup.tolist(), strict=True) if d]
    if spec.order == "sorted":
        out.sort(key=lambda r: (r[0], r[1]))
    else:
        jitter = rng.uniform(0, spec.shuffle_s, len(out)) if spec.order == "shuffled" else np.zeros(len(out))
        keyed = sorted(range(len(out)), key=lambda i: (out[i][1], out[i][0] + jitter[i]))
        out = [out[i] for i in keyed]
    return out


def resample_csv(src: Path, dst: Path, spec: Resample) -> int:
    """Write the resampled CSV; returns its number of data rows."""
    from cloud.training.alarm_eval import read_rows
    from cloud.training.ward_scenarios import write_rows

    return write_rows(dst, resample_rows(read_rows(src), spec))


def parse_spec(text: str) -> Resample:
    """``every=5,15,30,60;jitter=0.3;gap_per_h=0.15;gap_s=300,1200;duplicates=0.02;decimals=1;order=shuffled;
    seed=9607`` (any subset; ``every=15`` alone is a regular thinning to one row every 15 s)."""
    kw: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"{part!r}: expected KEY=VALUE")
        if key == "every":
            kw["every_s"] = tuple(float(x) for x in raw.split(","))
        elif key == "gap_s":
            lo, hi = (float(x) for x in raw.split(","))
            kw["gap_s"] = (lo, hi)
        elif key in ("jitter", "gap_per_h", "shuffle_s"):
            kw[key] = float(raw)
        elif key == "duplicates":
            kw["duplicate_fraction"] = float(raw)
        elif key in ("decimals", "seed"):
            kw[key] = int(raw)
        elif key == "order":
            kw["order"] = raw.strip()
        else:
            raise ValueError(f"{key!r}: expected one of every, jitter, gap_per_h, gap_s, duplicates, decimals, "
                             "order, shuffle_s, seed")
    return Resample(**kw)  # type: ignore[arg-type]
