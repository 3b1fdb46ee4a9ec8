"""Physiological scenario generator: synthetic ward patients at 1 Hz, stable or deteriorating.

No public ward dataset can be downloaded here, so the vitals-anomaly model is
trained and evaluated on these scenarios (MODEL_CARD.md says so). Structure of
one patient (all parameters drawn per patient from :class:`GeneratorParams`):

- baselines: HR ~ N(78, 10), SpO2 ~ N(96.5, 1.2) (COPD patients: a prescribed
  88-92 % target, SpO2 scale 2, on oxygen), resp ~ N(16, 2), systolic ~ N(125, 15),
  temperature ~ N(36.8, 0.25), each clipped to a plausible ward range;
- circadian rhythm: a 24 h sinusoid with a per-patient phase (nadir around
  04:00): HR +/-6 /min, systolic +/-8 mmHg, resp +/-1 /min, temperature +/-0.3 degC;
- slow physiological variation: Ornstein-Uhlenbeck noise per parameter
  (time constant 5-20 min) and fast measurement noise; SpO2 and rates are
  reported as integers like monitors do;
- benign confounders: activity bouts (mobilising, agitation: HR +15-35, resp +4-8
  for 2-10 min) and brief sleep desaturations (SpO2 -4 to -8 % for 30-120 s);
- artifacts: motion spikes in HR (to 130-200 for 3-20 s) and SpO2 drops (to 60-85 %
  for 5-30 s); about half are flagged ARTIFACT by the "monitor", the rest look valid;
- sensor-off periods (SpO2 probe off for 1-15 min, flagged SENSOR_OFF) and monitor
  gaps (all numerics missing for 5-30 min);
- intermittent measurements: NIBP every 15-60 min, temperature every 1-4 h;
- deterioration patterns (onset, duration D of 1-6 h, severity s, progress
  p(t) = ((t - onset) / D) ** shape rising 0 -> 1):
  * sepsis: HR +40 s p, resp +12 s p, temperature +2.2 s p (20 % hypothermic: -1.5),
    systolic -45 s p, SpO2 -4 s p, new confusion (C) past p = 0.85 in half;
  * respiratory failure: resp +16 s p, SpO2 -12 s p, HR +25 s p, oxygen started at p = 0.5;
  * haemorrhage (D of 0.5-3 h): HR +50 s p, systolic -55 s p, resp +8 s p, SpO2 -2 s p.
  The clinical *event* is the end of the development (onset + D); the scenario
  ends 30 min after it (transfer to critical care).

Held-out sets use different seeds AND different generator parameters
(:func:`heldout_params`) than training, so the model is not scored on the
exact distribution it was fitted to.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

PARAMS = ("heart_rate", "spo2", "resp_rate", "nibp_sys", "temperature")
KINDS = ("stable", "sepsis", "resp_failure", "haemorrhage")
ARTIFACT, SENSOR_OFF, UNAVAILABLE = 8, 4, 2  # clinical.sample.Quality bits (cloud does not import edge)
START_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z; scenario k starts on day 2k (so a set never overlaps in time)


@dataclass(frozen=True)
class GeneratorParams:
    hours: float = 12.0
    dt: float = 1.0
    deteriorating_fraction: float = 0.5
    copd_fraction: float = 0.15
    severity: tuple[float, float] = (0.6, 1.2)
    duration_h: tuple[float, float] = (1.0, 6.0)
    shape: tuple[float, float] = (1.2, 2.2)
    noise_scale: float = 1.0
    activity_per_h: float = 0.5
    desat_per_h: float = 0.5
    artifact_per_h: float = 4.0
    artifact_flagged: float = 0.5
    sensor_off_per_h: float = 0.3
    gap_per_h: float = 0.05
    nibp_every_min: tuple[float, float] = (15.0, 60.0)
    temp_every_min: tuple[float, float] = (60.0, 240.0)


def heldout_params(base: GeneratorParams | None = None) -> GeneratorParams:
    """Shifted parameters for the held-out set: noisier, more artifacts, different course shapes."""
    b = base or GeneratorParams()
    return replace(b, severity=(0.5, 1.3), duration_h=(0.75, 7.0), shape=(1.0, 2.6), noise_scale=1.25,
                   artifact_per_h=6.0, artifact_flagged=0.4, activity_per_h=0.7, desat_per_h=0.7,
                   sensor_off_per_h=0.45, copd_fraction=0.2)


@dataclass
class Scenario:
    patient: str
    kind: str
    start: float  # epoch seconds of t = 0
    t: np.ndarray  # seconds since start
    values: dict[str, np.ndarray]  # NaN where there is no reading
    quality: dict[str, np.ndarray]  # uint8 Quality bits; 0 = valid
    onset_s: float | None = None
    event_s: float | None = None
    scale2: bool = False
    shape: float = 1.0  # progress exponent: p(t) = ((t - onset) / (event - onset)) ** shape
    severity: float = 0.0
    context: list[tuple[float, str, str]] = field(default_factory=list)  # (t, on_oxygen|consciousness|spo2_scale2, v)

    @property
    def deteriorating(self) -> bool:
        return self.onset_s is not None

    @property
    def duration_s(self) -> float:
        return float(self.t[-1] + (self.t[1] - self.t[0] if len(self.t) > 1 else 1.0))


def _ou(rng: np.random.Generator, n: int, dt: float, tau: float, sd: float) -> np.ndarray:
    """Ornstein-Uhlenbeck (AR(1)) noise with time constant tau (s) and stationary sd."""
    a = math.exp(-dt / tau)
    e = rng.normal(0.0, sd * math.sqrt(1 - a * a), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, sd)
    for i in range(1, n):
        x[i] = a * x[i - 1] + e[i]
    return x


def _ou_fast(rng: np.random.Generator, n: int, dt: float, tau: float, sd: float) -> np.ndarray:
    """OU noise sampled every ~tau/10 and linearly interpolated (fast; smooth at 1 Hz anyway)."""
    step = max(dt, tau / 10.0)
    m = int(n * dt / step) + 2
    coarse = _ou(rng, m, step, tau, sd)
    out: np.ndarray = np.interp(np.arange(n) * dt, np.arange(m) * step, coarse)
    return out


def _episodes(rng: np.random.Generator, rate_per_h: float, total_s: float, dur: tuple[float, float]) -> list[
        tuple[float, float]]:
    k = rng.poisson(rate_per_h * total_s / 3600.0)
    starts = np.sort(rng.uniform(0, total_s, k))
    return [(float(s), float(rng.uniform(*dur))) for s in starts]


def generate(seed: int, index: int, gp: GeneratorParams, kind: str | None = None) -> Scenario:
    """One patient. ``seed`` and ``index`` fix everything; ``kind`` None draws one."""
    rng = np.random.default_rng([seed, index])
    if kind is None:
        kind = "stable" if rng.random() >= gp.deteriorating_fraction else str(rng.choice(KINDS[1:]))
    total = gp.hours * 3600.0
    onset = event = None
    severity = float(rng.uniform(*gp.severity))
    if kind != "stable":
        d_lo, d_hi = (0.5, 3.0) if kind == "haemorrhage" else gp.duration_h
        dur = float(rng.uniform(d_lo, d_hi)) * 3600.0
        onset = float(rng.uniform(2 * 3600.0, max(2 * 3600.0 + 1, total - dur - 0.5 * 3600.0)))
        event = onset + dur
        total = min(total, event + 1800.0)
    n = int(total / gp.dt)
    t = np.arange(n) * gp.dt
    copd = rng.random() < gp.copd_fraction
    ns = gp.noise_scale
    base = {
        "heart_rate": float(np.clip(rng.normal(78, 10), 55, 100)),
        "spo2": float(np.clip(rng.normal(90.5, 1.0), 88.5, 92))
        if copd
        else float(np.clip(rng.normal(96.5, 1.2), 94, 99.5)),
        "resp_rate": float(np.clip(rng.normal(16, 2), 12, 20)),
        "nibp_sys": float(np.clip(rng.normal(125, 15), 100, 165)),
        "temperature": float(np.clip(rng.normal(36.8, 0.25), 36.2, 37.4)),
    }
    start = START_EPOCH + 2 * 86400.0 * index + float(rng.uniform(0, 86400))
    hour = ((start + t) % 86400.0) / 3600.0
    phase = float(rng.normal(16.0, 1.5))  # peak mid-afternoon, nadir ~04:00
    circ = np.cos((hour - phase) / 24.0 * 2 * math.pi)
    amp = {"heart_rate": 6.0, "spo2": 0.0, "resp_rate": 1.0, "nibp_sys": 8.0, "temperature": 0.3}
    ou_sd = {"heart_rate": 4.0, "spo2": 0.6, "resp_rate": 1.2, "nibp_sys": 6.0, "temperature": 0.1}
    white = {"heart_rate": 1.5, "spo2": 0.5, "resp_rate": 1.0, "nibp_sys": 4.0, "temperature": 0.05}
    v: dict[str, np.ndarray] = {}
    for p in PARAMS:
        tau = float(rng.uniform(300, 1200))
        v[p] = base[p] + amp[p] * circ + ns * _ou_fast(rng, n, gp.dt, tau, ou_sd[p]) + ns * rng.normal(0, white[p], n)
    context: list[tuple[float, str, str]] = []
    if copd:
        context += [(0.0, "spo2_scale2", "1"), (0.0, "on_oxygen", "1")]
    # benign confounders
    for s, d in _episodes(rng, gp.activity_per_h, total, (120, 600)):
        m = (t >= s) & (t < s + d)
        ramp = np.sin(np.clip((t[m] - s) / d, 0, 1) * math.pi)
        v["heart_rate"][m] += rng.uniform(15, 35) * ramp
        v["resp_rate"][m] += rng.uniform(4, 8) * ramp
    for s, d in _episodes(rng, gp.desat_per_h, total, (30, 120)):
        m = (t >= s) & (t < s + d)
        v["spo2"][m] -= rng.uniform(4, 8) * np.sin(np.clip((t[m] - s) / d, 0, 1) * math.pi)
    # deterioration
    shape = 1.0
    if onset is not None and event is not None:
        shape = float(rng.uniform(*gp.shape))
        p = np.clip((t - onset) / (event - onset), 0, None) ** shape
        p = np.minimum(p, 1.15)
        sv = severity
        if kind == "sepsis":
            hypo = rng.random() < 0.2
            v["heart_rate"] += 40 * sv * p
            v["resp_rate"] += 12 * sv * p
            v["temperature"] += (-1.5 if hypo else 2.2) * sv * p
            v["nibp_sys"] -= 45 * sv * p
            v["spo2"] -= 4 * sv * p
            if rng.random() < 0.5:
                k = np.searchsorted(p, 0.85)
                if k < n:
                    context.append((float(t[k]), "consciousness", "C"))
        elif kind == "resp_failure":
            v["resp_rate"] += 16 * sv * p
            v["spo2"] -= 12 * sv * p
            v["heart_rate"] += 25 * sv * p
            v["nibp_sys"] += 5 * sv * p
            k = np.searchsorted(p, 0.5)
            if k < n and not copd:
                context.append((float(t[k]), "on_oxygen", "1"))
                v["spo2"][k:] += 3.0  # oxygen helps a little
        else:  # haemorrhage
            v["heart_rate"] += 50 * sv * p
            v["nibp_sys"] -= 55 * sv * p
            v["resp_rate"] += 8 * sv * p
            v["spo2"] -= 2 * sv * p
            v["temperature"] -= 0.5 * sv * p
    v["spo2"] = np.minimum(v["spo2"], 100.0)
    q = {p: np.zeros(n, np.uint8) for p in PARAMS}
    # artifacts (some flagged by the monitor, some not)
    for s, d in _episodes(rng, gp.artifact_per_h, total, (3, 30)):
        which = "heart_rate" if rng.random() < 0.5 else "spo2"
        m = (t >= s) & (t < s + d)
        v[which][m] = rng.uniform(130, 200) if which == "heart_rate" else rng.uniform(60, 85)
        if rng.random() < gp.artifact_flagged:
            q[which][m] |= ARTIFACT
    for s, d in _episodes(rng, gp.sensor_off_per_h, total, (60, 900)):
        m = (t >= s) & (t < s + d)
        v["spo2"][m] = np.nan
        q["spo2"][m] |= SENSOR_OFF
    for s, d in _episodes(rng, gp.gap_per_h, total, (300, 1800)):
        m = (t >= s) & (t < s + d)
        for p in PARAMS:
            v[p][m] = np.nan
            q[p][m] |= UNAVAILABLE
    # intermittent NIBP and temperature: keep only the measurement instants
    for p, every in (("nibp_sys", gp.nibp_every_min), ("temperature", gp.temp_every_min)):
        keep = np.zeros(n, bool)
        tm = float(rng.uniform(0, 600))
        while tm < total:
            keep[min(int(tm / gp.dt), n - 1)] = True
            tm += float(rng.uniform(*every)) * 60.0
        v[p] = np.where(keep, v[p], np.nan)
        q[p] = np.where(keep, q[p], 255).astype(np.uint8)  # 255: no sample at all at this instant
    for p in ("heart_rate", "spo2", "resp_rate", "nibp_sys"):
        v[p] = np.round(v[p])
    v["temperature"] = np.round(v["temperature"], 1)
    return Scenario(f"{kind[:3]}{seed % 1000:03d}-{index:04d}", kind, start, t, v, q, onset, event, copd,
                    shape, severity if onset is not None else 0.0, sorted(context))


def generate_set(seed: int, count: int, gp: GeneratorParams) -> list[Scenario]:
    return [generate(seed, i, gp) for i in range(count)]


def write_csv(scenarios: list[Scenario], path: Path, every_s: float = 1.0) -> int:
    """Write scenarios in the replay format (timestamp, patient, parameter, value); returns rows.

    Quality-flagged samples are written with an empty value (no valid reading),
    which is what a recorded export of a monitor holds.
    """
    rows = 0
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "patient", "parameter", "value"])
        for sc in scenarios:
            for tc, name, val in sc.context:
                if tc == 0.0:
                    w.writerow([f"{sc.start:.1f}", sc.patient, name, val])
                    rows += 1
            step = max(1, round(every_s / (sc.t[1] - sc.t[0]))) if len(sc.t) > 1 else 1
            ctx = [c for c in sc.context if c[0] > 0.0]
            ci = 0
            for k in range(0, len(sc.t), 1):
                tk = sc.t[k]
                while ci < len(ctx) and ctx[ci][0] <= tk:
                    w.writerow([f"{sc.start + ctx[ci][0]:.1f}", sc.patient, ctx[ci][1], ctx[ci][2]])
                    ci += 1
                    rows += 1
                ts = f"{sc.start + tk:.1f}"
                for p in PARAMS:
                    qq = sc.quality[p][k]
                    if qq == 255:
                        continue
                    if p in ("heart_rate", "spo2", "resp_rate") and k % step:
                        continue
                    val = sc.values[p][k]
                    w.writerow([ts, sc.patient, p, "" if qq or val != val else f"{val:g}"])
                    rows += 1
    return rows
