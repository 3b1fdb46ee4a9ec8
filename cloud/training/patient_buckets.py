"""Training data for vitals-anomaly 2.x: per-patient minute buckets and per-bucket labels.

A :class:`~cloud.training.fleet_data.PatientBuckets` (patient, ends, rows, labels, optional weights) is what
the trainer (cloud/training/vitals_anomaly2.py, ``fit_from_buckets``)
takes, from any source: the ward generator here (:func:`ward_patient_buckets`), or the fleet's
per-minute summaries in InfluxDB (issue 12's learning loop), which carry the same buckets. ``rows``
follow clinical/features.py exactly (``bucket_rows``: normalised values then masks, one row per
minute); the model's input is built from them by clinical/model_input.py, the gateway's own builder.

Generated patients are bucketed from the samples the gateway would take as clean (the smart policy's
artifact check, clinical/artifact.py ``clean_flags``): on a gateway an artifact never reaches the
buckets either.
"""

from __future__ import annotations

import math

import numpy as np

from clinical.artifact import clean_flags
from clinical.features import N_FEATURES, bucket_rows
from cloud.training.fleet_data import PatientBuckets  # one definition: the learning loop's (issue 12)

__all__ = ["PatientBuckets", "check_buckets", "ward_labels", "ward_patient_buckets"]


def check_buckets(pb: PatientBuckets) -> None:
    """ValueError unless rows, labels (and weights, when given) match the buckets."""
    n = len(pb.ends)
    if pb.rows.shape != (n, N_FEATURES) or pb.labels.shape != (n,):
        raise ValueError(f"{pb.patient}: rows {pb.rows.shape} / labels {pb.labels.shape} do not match "
                         f"{n} buckets x {N_FEATURES} features")
    if not np.isin(pb.labels, (-1, 0, 1)).all():
        raise ValueError(f"{pb.patient}: labels must be -1, 0 or 1")
    if len(pb.weights) not in (0, n):
        raise ValueError(f"{pb.patient}: {len(pb.weights)} weights for {n} buckets")


def ward_labels(ends: np.ndarray, onset: float | None, half: float | None, end: float | None,
                visible: float = 0.15) -> np.ndarray:
    """Per bucket: 0 stable (and before onset), -1 from onset until the deterioration reached ``visible``
    of its full effect (too small to call either way), 1 from then on."""
    y = np.zeros(len(ends), np.int8)
    if onset is None or half is None or end is None:
        return y
    dur = max(end - onset, 1.0)
    frac = min(max((half - onset) / dur, 1e-6), 1 - 1e-6)
    shape = math.log(0.5) / math.log(frac)  # progress ((t - onset) / dur) ** shape is 0.5 at ``half``
    y[ends >= onset] = -1
    y[ends >= onset + dur * visible ** (1.0 / shape)] = 1
    return y


def ward_patient_buckets(seed: int, count: int, wp: object, first: int = 0) -> list[PatientBuckets]:
    """Generated ward patients (cloud/training/ward_scenarios.py) as bucket rows and labels."""
    from cloud.training.ward_scenarios import WardParams, generate_ward

    assert isinstance(wp, WardParams)
    out = []
    for i in range(first, first + count):
        sc = generate_ward(seed, i, wp)
        lab = sc.label
        vals = {p: np.where(sc.present[p], sc.values[p], np.nan) for p in sc.values}
        ok = clean_flags(sc.t, vals)
        t = lab.start + sc.t
        values = {p: np.where(ok[p], vals[p], np.nan) for p in vals}
        quality = {p: np.zeros(len(t), np.int8) for p in vals}
        ends, rows = bucket_rows(t, values, quality)
        out.append(PatientBuckets(lab.patient, ends, rows, ward_labels(ends, lab.onset, lab.half, lab.end)))
    return out
