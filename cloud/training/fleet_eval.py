"""Alarm-level figures of a vitals-anomaly model on fleet patients (the same for candidate and active).

Each patient's buckets are scored from the gateway's first scored bucket (``min_buckets``) on; the
gateway's alarm logic is simulated over the scores (``simulate_alarms``: score >= threshold held for two
buckets, hysteresis, clear delay; the same function the 1.x training uses), and per patient:

- ``episodes`` / ``detected``: an episode (cloud/training/fleet_labels.py) counts as detected when an alarm
  is raised between its start and its end; ``lead`` is its anchor minus the first such alarm (minutes);
- ``false_alarms`` over ``stable_days``: alarms raised in buckets labelled 0 (no event near, no actionable
  alarm: the time in which an alarm is a false one, hard negatives included).

A model is scored through a ``score(inputs) -> probabilities`` callable with its input kind (the manifest's
``features.input``: ``window`` for 1.x, ``baseline`` for 2.x), the inputs built by the gateway's own builder
(clinical/model_input.py ``inputs_for``): the active and the candidate as LiteRT models on their real .tflite
files (:func:`litert_scorer`), or a Keras model during training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clinical.features import BUCKET_S
from clinical.model_input import inputs_for
from cloud.training.fleet_data import FleetData, PatientBuckets
from cloud.training.fleet_labels import episodes
from cloud.training.vitals_anomaly import simulate_alarms

Scorer = Callable[[np.ndarray], np.ndarray]
CHUNK = 512


@dataclass
class PatientFigures:
    patient: str
    episodes: int = 0
    detected: int = 0
    leads_min: list[float] = field(default_factory=list)
    false_alarms: int = 0
    stable_days: float = 0.0


def litert_scorer(model_dir: Path) -> tuple[Scorer, float, int, str, str]:
    """(score, threshold, min_buckets, version, input kind) of a model directory through the one LiteRT
    wrapper."""
    from clinical.anomaly import VitalsAnomalyModel

    m = VitalsAnomalyModel(model_dir)

    def score(w: np.ndarray) -> np.ndarray:
        return np.concatenate([m.score_windows(w[i:i + CHUNK]) for i in range(0, len(w), CHUNK)]) \
            if len(w) else np.zeros(0, np.float32)

    return score, m.threshold, m.min_buckets, m.version, m.input_kind


def patient_scores(score: Scorer, pb: PatientBuckets, min_buckets: int, kind: str = "window") -> tuple[
        np.ndarray, np.ndarray]:
    """(bucket indices scored, scores)."""
    at = np.arange(min(min_buckets, len(pb.ends)), len(pb.ends))
    return at, (np.asarray(score(inputs_for(kind, pb.rows, at)), np.float64) if len(at) else np.zeros(0))


def patient_figures(fleet: FleetData, pb: PatientBuckets, at: np.ndarray, scores: np.ndarray,
                    threshold: float) -> PatientFigures:
    f = PatientFigures(pb.patient)
    raised = [int(at[k]) for k in simulate_alarms(scores, threshold)]
    times = [float(pb.ends[k]) for k in raised]
    for ep in episodes(fleet, pb):
        f.episodes += 1
        hits = [t for t in times if ep.start <= t <= ep.end]
        if hits:
            f.detected += 1
            f.leads_min.append(max(0.0, (ep.anchor - hits[0]) / 60.0))
    f.false_alarms = sum(1 for k in raised if pb.labels[k] == 0)
    f.stable_days = float((pb.labels[at] == 0).sum()) * BUCKET_S / 86400.0 if len(at) else 0.0
    return f


def evaluate(score: Scorer, threshold: float, min_buckets: int, fleet: FleetData,
             patients: list[PatientBuckets], kind: str = "window") -> list[PatientFigures]:
    out = []
    for pb in patients:
        at, s = patient_scores(score, pb, min_buckets, kind)
        out.append(patient_figures(fleet, pb, at, s, threshold))
    return out


def summary(figs: list[PatientFigures]) -> dict[str, Any]:
    """Pooled figures: sensitivity, false alarms per patient-day, median lead (minutes)."""
    ep = sum(f.episodes for f in figs)
    det = sum(f.detected for f in figs)
    days = sum(f.stable_days for f in figs)
    leads = [x for f in figs for x in f.leads_min]
    return {
        "sensitivity": round(det / ep, 4) if ep else None,
        "false_alarms_per_patient_day": round(sum(f.false_alarms for f in figs) / days, 3) if days else None,
        "lead_min_median": round(float(np.median(leads)), 1) if leads else None,
        "episodes": ep, "detected": det, "false_alarms": sum(f.false_alarms for f in figs),
        "patient_days": round(days, 3),
    }


def choose_threshold(fleet: FleetData, patients: list[PatientBuckets], score: Scorer, min_buckets: int,
                     target_fa_per_day: float) -> tuple[float, dict[str, Any]]:
    """The lowest threshold whose false alarms per patient-day on ``patients`` stay under the target."""
    scored = [(pb, *patient_scores(score, pb, min_buckets)) for pb in patients]
    last: tuple[float, dict[str, Any]] = (0.999, {})
    for thr in (*np.arange(0.30, 0.985, 0.01), 0.99, 0.993, 0.996, 0.998, 0.999):
        figs = [patient_figures(fleet, pb, at, s, float(thr)) for pb, at, s in scored]
        sm = summary(figs)
        last = (float(thr), sm)
        fa = sm["false_alarms_per_patient_day"]
        if fa is None or fa <= target_fa_per_day:
            return float(thr), sm
    return last
