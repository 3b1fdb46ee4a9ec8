"""A harder ward generator: the confounders that make bedside thresholds alarm all day, and
deteriorations from seconds (respiratory arrest, ventricular tachycardia) to hours (sepsis).

Each patient is sampled at 1 Hz (ECG heart rate, pleth pulse rate, SpO2, perfusion index,
respiration rate) with NIBP every 15-60 min (5-15 min once a deterioration is under way:
nurses cycle the cuff more often) and temperature every 1-4 h. Per patient, from
:class:`WardParams`:

- baselines: ordinary adults, athletes (HR 40-50), chronic tachycardia (HR 100-120), COPD on
  a prescribed 88-92 % target (SpO2 scale 2, on oxygen), hypertensives; circadian rhythm,
  Ornstein-Uhlenbeck drift, measurement noise, sleep at night (HR -6, resp -2, SpO2 -1);
- confounders in stable time: activity bouts (HR +15-40, resp +3-9 for 2-15 min); motion bursts
  that hit ECG HR, pulse rate and SpO2 together (HR jumps, SpO2 drops, perfusion index falls),
  part of them flagged by the monitor (an empty value in the CSV); a probe half off (SpO2 reads
  78-88 steadily, perfusion index < 0.3, pulse rate erratic); probe off (empty SpO2/PR/PI); NIBP
  cuff errors (a reading 30-60 mmHg low or high, or diastolic above systolic); sleep-apnoea
  clusters (SpO2 dips of 4-12 % for 15-50 s every 1-3 min, resp slows); arrhythmia bursts
  (HR 120-155 for 5-40 s, pulse deficit on the pleth); monitor gaps;
- deteriorations, progress p(t) = ((t - onset) / D) ** shape, rising 0 -> 1 at ``end``:
  sepsis (D 2-8 h), respiratory failure (1-5 h), haemorrhage (15-120 min), acute desaturation
  (2-15 min), and two life-threatening events: respiratory arrest (resp falls to 0 within
  10-60 s, SpO2 follows) and ventricular tachycardia (HR 165-220 within 2-5 s, blood pressure
  falls). Labels: onset, half (p = 0.5), end, life_threatening, validated (the first second the
  true signal is beyond the life-threatening limit: resp <= 4, HR >= 160).

Held-out sets use other seeds AND other parameters (:func:`heldout_ward_params`).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from cloud.training.scenarios import START_EPOCH, _episodes, _ou_fast

CHANNELS = ("heart_rate", "pulse_rate", "spo2", "perfusion_index", "resp_rate", "nibp_sys", "nibp_dia",
            "temperature")
CONTINUOUS = ("heart_rate", "pulse_rate", "spo2", "perfusion_index", "resp_rate")
KINDS = ("sepsis", "resp_failure", "haemorrhage", "acute_desat", "resp_arrest", "vtach")
LIFE_THREATENING = frozenset({"resp_arrest", "vtach"})


@dataclass(frozen=True)
class WardParams:
    hours: float = 10.0
    deteriorating_fraction: float = 0.45
    kind_weights: tuple[float, ...] = (0.25, 0.2, 0.2, 0.15, 0.1, 0.1)
    severity: tuple[float, float] = (0.6, 1.2)
    shape: tuple[float, float] = (1.0, 2.2)
    noise_scale: float = 1.0
    athlete_fraction: float = 0.06
    tachy_fraction: float = 0.06
    copd_fraction: float = 0.15
    hypertensive_fraction: float = 0.1
    activity_per_h: float = 0.5
    motion_per_h: float = 4.0
    motion_flagged: float = 0.4
    half_off_per_h: float = 0.1
    probe_off_per_h: float = 0.3
    cuff_error_fraction: float = 0.08
    apnoea_fraction: float = 0.15
    arrhythmia_per_h: float = 0.5
    gap_per_h: float = 0.04
    with_pulse_rate: bool = True
    with_perfusion: bool = True


def heldout_ward_params(base: WardParams | None = None) -> WardParams:
    """Shifted parameters for held-out sets: noisier, more confounders, other course shapes."""
    b = base or WardParams()
    return replace(b, severity=(0.5, 1.3), shape=(0.9, 2.6), noise_scale=1.2, motion_per_h=6.0,
                   motion_flagged=0.3, activity_per_h=0.7, half_off_per_h=0.15, probe_off_per_h=0.45,
                   cuff_error_fraction=0.12, apnoea_fraction=0.2, arrhythmia_per_h=0.8, athlete_fraction=0.08,
                   tachy_fraction=0.08, copd_fraction=0.2)


def clean_ward_params(base: WardParams | None = None) -> WardParams:
    """A quiet ward like the independent recordings (bedside thresholds ~10-20 false-alarm episodes per
    patient-day, NEWS2 almost silent): less noise and fewer confounders than ``WardParams()``, whose
    course shapes, severities and unusual-baseline fractions it keeps. Sets H, L and N (docs/heldout-issue10.md)."""
    b = base or WardParams()
    return replace(b, noise_scale=0.6, motion_per_h=1.0, motion_flagged=0.5, activity_per_h=0.3,
                   half_off_per_h=0.02, probe_off_per_h=0.15, cuff_error_fraction=0.04, apnoea_fraction=0.05,
                   arrhythmia_per_h=0.2)


# The bases `pulsegate model eval alarms --ward-base` starts from (``--ward-param`` changes them further).
WARD_BASES = {"heldout": heldout_ward_params, "clean": clean_ward_params}


# Named generator variants for training augmentation and validation (never the held-out sets' parameters):
# "bare" is an ECG + SpO2-only monitor (no pleth pulse rate, no perfusion index), noisier, more motion.
WARD_VARIANTS: dict[str, dict[str, float | bool]] = {
    "default": {},
    "bare": {"with_pulse_rate": False, "with_perfusion": False, "noise_scale": 1.3, "motion_per_h": 6.0},
}


@dataclass
class WardLabel:
    patient: str
    kind: str  # "stable" or one of KINDS
    start: float  # epoch seconds of the first sample
    stop: float  # epoch seconds after the last sample
    onset: float | None = None
    half: float | None = None
    end: float | None = None
    life_threatening: bool = False
    validated: float | None = None
    scale2: bool = False
    baseline: str = "adult"


@dataclass
class WardScenario:
    label: WardLabel
    t: np.ndarray  # seconds since label.start
    values: dict[str, np.ndarray]  # NaN: no valid reading (flagged, off, gap); intermittent channels mostly NaN
    present: dict[str, np.ndarray]  # bool: a row exists at this second (an empty value if values is NaN)
    context: list[tuple[float, str, str]]


def _mask(t: np.ndarray, s: float, d: float) -> np.ndarray:
    m: np.ndarray = (t >= s) & (t < s + d)
    return m


def generate_ward(seed: int, index: int, wp: WardParams, kind: str | None = None) -> WardScenario:
    rng = np.random.default_rng([seed, index, 7])
    if kind is None:
        kind = "stable" if rng.random() >= wp.deteriorating_fraction else str(
            rng.choice(KINDS, p=np.array(wp.kind_weights) / sum(wp.kind_weights)))
    total = wp.hours * 3600.0
    n = int(total)
    t = np.arange(n, dtype=np.float64)
    start = START_EPOCH + 2 * 86400.0 * index + float(rng.uniform(0, 86400))
    ns = wp.noise_scale
    r = rng.random()
    baseline = "adult"
    hr0 = float(np.clip(rng.normal(76, 9), 56, 95))
    if r < wp.athlete_fraction:
        baseline, hr0 = "athlete", float(rng.uniform(44, 52))
    elif r < wp.athlete_fraction + wp.tachy_fraction:
        baseline, hr0 = "chronic_tachycardia", float(rng.uniform(100, 120))
    copd = rng.random() < wp.copd_fraction
    if copd:
        baseline = "copd"
    sys0 = float(rng.uniform(150, 175)) if rng.random() < wp.hypertensive_fraction else float(
        np.clip(rng.normal(124, 13), 100, 150))
    base = {"heart_rate": hr0, "spo2": float(rng.uniform(88.5, 92)) if copd else float(np.clip(rng.normal(96.5, 1.2),
                                                                                                 94, 99.5)),
            "resp_rate": float(np.clip(rng.normal(16, 2), 12, 20)) + (3.0 if copd else 0.0),
            "nibp_sys": sys0, "temperature": float(np.clip(rng.normal(36.8, 0.25), 36.2, 37.4)),
            "perfusion_index": float(rng.uniform(1.0, 6.0))}
    hour = ((start + t) % 86400.0) / 3600.0
    circ = np.cos((hour - float(rng.normal(16.0, 1.5))) / 24.0 * 2 * math.pi)
    night = ((hour >= 23) | (hour < 6)).astype(np.float64)
    amp = {"heart_rate": 5.0, "spo2": 0.0, "resp_rate": 1.0, "nibp_sys": 8.0, "temperature": 0.3,
           "perfusion_index": 0.3}
    ou = {"heart_rate": 4.0, "spo2": 0.6, "resp_rate": 1.2, "nibp_sys": 6.0, "temperature": 0.1,
          "perfusion_index": 0.4}
    white = {"heart_rate": 1.5, "spo2": 0.5, "resp_rate": 1.0, "nibp_sys": 4.0, "temperature": 0.05,
             "perfusion_index": 0.15}
    v: dict[str, np.ndarray] = {}
    for p in base:
        v[p] = (base[p] + amp[p] * circ + ns * _ou_fast(rng, n, 1.0, float(rng.uniform(300, 1200)), ou[p])
                + ns * rng.normal(0, white[p], n))
    v["heart_rate"] -= 6 * night
    v["resp_rate"] -= 2 * night
    v["spo2"] -= 1 * night
    ctx: list[tuple[float, str, str]] = []
    if copd:
        ctx += [(0.0, "spo2_scale2", "1"), (0.0, "on_oxygen", "1")]
    for s, d in _episodes(rng, wp.activity_per_h, total, (120, 900)):
        m = _mask(t, s, d)
        ramp = np.sin(np.clip((t[m] - s) / d, 0, 1) * math.pi)
        v["heart_rate"][m] += rng.uniform(15, 40) * ramp
        v["resp_rate"][m] += rng.uniform(3, 9) * ramp
        v["nibp_sys"][m] += rng.uniform(5, 20) * ramp
    if rng.random() < wp.apnoea_fraction:  # a night-time cluster of obstructive apnoeas
        cs = float(rng.uniform(0, max(1.0, total - 3600)))
        ce = cs + float(rng.uniform(1200, 3600))
        tc = cs
        while tc < ce:
            d = float(rng.uniform(15, 50))
            m = _mask(t, tc, d)
            depth = rng.uniform(4, 12)
            shape_ = np.sin(np.clip((t[m] - tc) / d, 0, 1) * math.pi)
            v["spo2"][m] -= depth * shape_
            v["resp_rate"][m] *= 1 - 0.4 * shape_
            v["heart_rate"][m] += rng.uniform(0, 10) * shape_
            tc += float(rng.uniform(60, 180))
    for s, d in _episodes(rng, wp.arrhythmia_per_h, total, (5, 40)):
        m = _mask(t, s, d)
        v["heart_rate"][m] = rng.uniform(120, 155) + rng.normal(0, 6, int(m.sum()))
    label = WardLabel(f"w{seed % 1000:03d}-{index:04d}", kind, start, start + n, scale2=copd, baseline=baseline)
    if kind != "stable":
        _deteriorate(rng, kind, wp, t, v, ctx, label, copd)
    v["pulse_rate"] = v["heart_rate"] + rng.normal(0, 1.0, n)
    # motion bursts: ECG HR, pulse rate and SpO2 together, perfusion index falls; some flagged by the monitor
    flagged = {p: np.zeros(n, bool) for p in CHANNELS}
    for s, d in _episodes(rng, wp.motion_per_h, total, (4, 45)):
        m = _mask(t, s, d)
        k = int(m.sum())
        if not k:
            continue
        v["heart_rate"][m] += rng.uniform(20, 80) + rng.normal(0, 12, k)
        v["pulse_rate"][m] += rng.uniform(20, 90) + rng.normal(0, 15, k)
        v["spo2"][m] -= rng.uniform(5, 30) + rng.normal(0, 3, k)
        v["perfusion_index"][m] *= rng.uniform(0.1, 0.5)
        if rng.random() < wp.motion_flagged:
            for p in ("heart_rate", "pulse_rate", "spo2"):
                flagged[p][m] = True
    for s, d in _episodes(rng, wp.half_off_per_h, total, (60, 1200)):  # probe half off: reads low, poor perfusion
        m = _mask(t, s, d)
        k = int(m.sum())
        v["spo2"][m] = rng.uniform(78, 88) + rng.normal(0, 1.0, k)
        v["perfusion_index"][m] = rng.uniform(0.05, 0.25) + rng.normal(0, 0.02, k)
        v["pulse_rate"][m] = v["heart_rate"][m] * rng.uniform(0.6, 0.9) + rng.normal(0, 8, k)
    for s, d in _episodes(rng, wp.probe_off_per_h, total, (30, 900)):
        m = _mask(t, s, d)
        for p in ("spo2", "pulse_rate", "perfusion_index"):
            flagged[p][m] = True
    for s, d in _episodes(rng, wp.gap_per_h, total, (120, 1200)):
        m = _mask(t, s, d)
        for p in CHANNELS:
            flagged[p][m] = True
    v["spo2"] = np.minimum(v["spo2"], 100.0)
    v["perfusion_index"] = np.clip(v["perfusion_index"], 0.02, 20.0)
    v["resp_rate"] = np.maximum(v["resp_rate"], 0.0)
    present = {p: np.ones(n, bool) for p in CONTINUOUS}
    if not wp.with_pulse_rate:
        present["pulse_rate"][:] = False
    if not wp.with_perfusion:
        present["perfusion_index"][:] = False
    det = label.onset is not None
    for p, every in (("nibp_sys", (15.0, 60.0)), ("temperature", (60.0, 240.0))):
        keep = np.zeros(n, bool)
        tm = float(rng.uniform(0, 600))
        while tm < total:
            keep[min(int(tm), n - 1)] = True
            sick = det and label.onset is not None and tm >= label.onset - start + 600
            lo, hi = ((5.0, 15.0) if p == "nibp_sys" else (30.0, 60.0)) if sick else every
            tm += float(rng.uniform(lo, hi)) * 60.0
        present[p] = keep
    present["nibp_dia"] = present["nibp_sys"].copy()
    v["nibp_dia"] = v["nibp_sys"] * rng.uniform(0.55, 0.68) + rng.normal(0, 3, n)
    for kk in np.flatnonzero(present["nibp_sys"]).tolist():  # cuff errors: one wrong reading, the next is fine
        if rng.random() < wp.cuff_error_fraction:
            if rng.random() < 0.5:
                v["nibp_sys"][kk] += rng.choice([-1.0, 1.0]) * rng.uniform(30, 60)
            else:
                v["nibp_dia"][kk] = v["nibp_sys"][kk] + rng.uniform(2, 15)
    for p in CHANNELS:
        v[p] = np.where(flagged[p] & present[p], np.nan, v[p])
    for p in ("heart_rate", "pulse_rate", "spo2", "resp_rate", "nibp_sys", "nibp_dia"):
        v[p] = np.round(v[p])
    v["temperature"] = np.round(v["temperature"], 1)
    v["perfusion_index"] = np.round(v["perfusion_index"], 2)
    keep_n = int(label.stop - start)
    return WardScenario(label, t[:keep_n], {p: a[:keep_n] for p, a in v.items()},
                        {p: a[:keep_n] for p, a in present.items()}, sorted(c for c in ctx if c[0] < keep_n))


def _deteriorate(rng: np.random.Generator, kind: str, wp: WardParams, t: np.ndarray, v: dict[str, np.ndarray],
                 ctx: list[tuple[float, str, str]], label: WardLabel, copd: bool) -> None:
    total = float(len(t))
    d_range = {"sepsis": (2.0, 8.0), "resp_failure": (1.0, 5.0), "haemorrhage": (0.25, 2.0),
               "acute_desat": (2 / 60, 15 / 60), "resp_arrest": (10 / 3600, 60 / 3600),
               "vtach": (2 / 3600, 5 / 3600)}[kind]
    dur = float(rng.uniform(*d_range)) * 3600.0
    tail = 1800.0 if kind not in LIFE_THREATENING else 600.0
    onset = float(rng.uniform(1.5 * 3600.0, max(1.5 * 3600.0 + 1, total - dur - tail)))
    shape = float(rng.uniform(*wp.shape)) if kind not in LIFE_THREATENING else 1.0
    sv = float(rng.uniform(*wp.severity))
    p = np.minimum(np.clip((t - onset) / dur, 0, None) ** shape, 1.1)
    if kind == "sepsis":
        v["heart_rate"] += 40 * sv * p
        v["resp_rate"] += 12 * sv * p
        v["temperature"] += (-1.5 if rng.random() < 0.2 else 2.2) * sv * p
        v["nibp_sys"] -= 45 * sv * p
        v["spo2"] -= 4 * sv * p
        v["perfusion_index"] *= 1 - 0.5 * p
        if rng.random() < 0.5:
            k = int(np.searchsorted(p, 0.85))
            if k < len(t):
                ctx.append((float(t[k]), "consciousness", "C"))
    elif kind == "resp_failure":
        v["resp_rate"] += 16 * sv * p
        v["spo2"] -= 12 * sv * p
        v["heart_rate"] += 25 * sv * p
        k = int(np.searchsorted(p, 0.6))
        if k < len(t) and not copd:
            ctx.append((float(t[k]), "on_oxygen", "1"))
            v["spo2"][k:] += 3.0
    elif kind == "haemorrhage":
        v["heart_rate"] += 50 * sv * p
        v["nibp_sys"] -= 55 * sv * p
        v["resp_rate"] += 8 * sv * p
        v["spo2"] -= 2 * sv * p
        v["perfusion_index"] *= 1 - 0.6 * p
    elif kind == "acute_desat":  # e.g. a mucus plug, aspiration: SpO2 falls over minutes, breathing and HR respond
        v["spo2"] -= (14 + 10 * sv) * p
        v["resp_rate"] += 8 * sv * p
        v["heart_rate"] += 20 * sv * p
    elif kind == "resp_arrest":  # breathing stops, SpO2 follows after a minute, then bradycardia
        v["resp_rate"] *= 1 - np.minimum(p, 1.0)
        late = np.clip((t - onset - dur - 40) / 90.0, 0, 1)
        v["spo2"] -= 35 * late
        v["heart_rate"] -= 30 * np.clip((t - onset - dur - 120) / 120.0, 0, 1)
    else:  # vtach
        v["heart_rate"] = v["heart_rate"] * (1 - np.minimum(p, 1.0)) + np.minimum(p, 1.0) * float(
            rng.uniform(165, 220)) + rng.normal(0, 2, len(t)) * (p > 0)
        v["nibp_sys"] -= 40 * np.minimum(p, 1.0)
        v["spo2"] -= 6 * np.clip((t - onset - dur - 30) / 120.0, 0, 1)
    s0 = label.start
    label.onset = s0 + onset
    label.half = s0 + onset + dur * 0.5 ** (1.0 / shape)
    label.end = s0 + onset + dur
    label.stop = min(label.stop, label.end + tail)
    label.life_threatening = kind in LIFE_THREATENING
    if kind == "resp_arrest":
        k = int(np.argmax((t >= onset) & (v["resp_rate"] <= 4.0)))
        label.validated = s0 + float(t[k])
    elif kind == "vtach":
        k = int(np.argmax((t >= onset) & (v["heart_rate"] >= 160.0)))
        label.validated = s0 + float(t[k])


def generate_ward_set(seed: int, count: int, wp: WardParams) -> list[WardScenario]:
    return [generate_ward(seed, i, wp) for i in range(count)]


def _rows(sc: WardScenario) -> list[tuple[float, str, str, str]]:
    lab = sc.label
    rows: list[tuple[float, str, str, str]] = [(lab.start + tc, lab.patient, name, val) for tc, name, val in
                                                sc.context]
    for p in CHANNELS:
        idx = np.flatnonzero(sc.present[p])
        vals = sc.values[p][idx]
        fmt = "{:.1f}" if p == "temperature" else "{:.2f}" if p == "perfusion_index" else "{:.0f}"
        for k, val in zip(idx.tolist(), vals.tolist(), strict=True):
            rows.append((lab.start + k, lab.patient, p, "" if val != val else fmt.format(val)))
    rows.sort(key=lambda r: r[0])  # stable: context rows first at equal times
    return rows


def write_ward_csv(scenarios: list[WardScenario], path: Path, order: str = "grouped", seed: int = 0,
                   shuffle_s: float = 5.0) -> int:
    """The replay format. ``order``: grouped (by patient, as exports are), sorted (by time), or shuffled
    (grouped, then every row moved by up to ``shuffle_s`` seconds). Returns the number of data rows."""
    allrows: list[tuple[float, str, str, str]] = []
    for sc in scenarios:
        allrows += _rows(sc)
    if order == "sorted":
        allrows.sort(key=lambda r: r[0])
    elif order == "shuffled":
        rng = np.random.default_rng(seed)
        jitter = rng.uniform(0, shuffle_s, len(allrows))
        keyed = sorted(range(len(allrows)), key=lambda i: (allrows[i][1], allrows[i][0] + jitter[i]))
        allrows = [allrows[i] for i in keyed]
    elif order != "grouped":
        raise ValueError(f"order must be grouped, sorted or shuffled, not {order!r}")
    return write_rows(path, allrows)


def write_rows(path: Path, rows: list[tuple[float, str, str, str]]) -> int:
    """(epoch, patient, parameter, value) rows as a replay CSV, in the order given; returns their number."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "patient", "parameter", "value"])
        for ts, pat, par, val in rows:
            w.writerow([f"{ts:.1f}", pat, par, val])
    return len(rows)


def write_labels(scenarios: list[WardScenario], path: Path) -> None:
    """One JSON object per patient (see :class:`WardLabel`), epoch seconds."""
    path.write_text("".join(json.dumps(asdict(sc.label)) + "\n" for sc in scenarios))


def read_labels(path: Path) -> list[WardLabel]:
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(WardLabel(**json.loads(line)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{i}: not a label: {exc}") from None
    return out
