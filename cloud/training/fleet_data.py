"""The training set the fleet recorded: per-patient minute buckets and labels, read from InfluxDB.

Inputs (docs/learning-loop.md "Training set"):

- ``vitals``: the gateways' per-interval summaries (count and mean of the valid samples per bed,
  pseudonymous patient and parameter). Summaries of any interval are combined into the model's
  one-minute buckets by their count-weighted mean, then turned into the model's rows by
  :func:`clinical.features.bucket_rows` itself, the vectorised form of the gateway's feature spec: one
  sample per minute and parameter at the bucket's start carrying the bucket's mean, so the carry-forward,
  the pulse-rate fallback, the normalisation and the masks are the spec's own code, not a copy;
- ``verdicts`` and ``clinical_events``: the labels (cloud/training/fleet_labels.py).

Everything is keyed by the patient pseudonym; nothing here sees an identifier.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clinical.features import BUCKET_S, MODEL_PARAMS, SPEC, bucket_rows
from cloud.influx import InfluxWriter

FALLBACK_PARAMS = tuple(alt for _, alt in SPEC.fallback)
READ_PARAMS = MODEL_PARAMS + FALLBACK_PARAMS
_SINCE = re.compile(r"^([0-9]{1,5})([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_seconds(text: str) -> int:
    """``30d``, ``12h``, ``90m``, ``3600s`` -> seconds (ValueError naming the form otherwise)."""
    m = _SINCE.match(text.strip())
    if not m:
        raise ValueError(f"--since {text[:20]!r}: give a number and a unit, e.g. 30d, 12h, 90m")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


@dataclass
class PatientBuckets:
    """One patient's minute buckets: what the model reads (``rows``) and what training learns (``labels``)."""

    patient: str  # pseudonym
    ends: np.ndarray  # bucket end, epoch seconds
    rows: np.ndarray  # (n, N_FEATURES) float32, the feature spec's rows
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))  # 1 / 0 / -1 (left out)
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @property
    def start(self) -> float:
        return float(self.ends[0] - BUCKET_S)

    @property
    def hours(self) -> float:
        return len(self.ends) * BUCKET_S / 3600.0


@dataclass
class Feedback:
    """A nurse's verdict on an alarm (time = the alarm's raise time, epoch s)."""

    patient: str
    t: float
    verdict: str
    alarm_id: str


@dataclass
class ClinicalEventRow:
    patient: str
    t: float
    code: str


@dataclass
class FleetData:
    patients: list[PatientBuckets]
    verdicts: list[Feedback]
    events: list[ClinicalEventRow]


def patient_buckets(patient: str, minutes: dict[str, dict[int, tuple[float, int]]]) -> PatientBuckets | None:
    """Rows of one patient from ``param -> {minute index: (sum of values, count)}`` (count > 0)."""
    every = sorted({k for per in minutes.values() for k in per})
    if not every:
        return None
    t = np.asarray(every, np.float64) * BUCKET_S  # each bucket's start: one "sample" per bucket
    values: dict[str, np.ndarray] = {}
    quality: dict[str, np.ndarray] = {}
    pos = {k: i for i, k in enumerate(every)}
    for p in READ_PARAMS:
        per = minutes.get(p)
        if not per:
            continue
        v = np.full(len(t), np.nan)
        for k, (s, c) in per.items():
            v[pos[k]] = s / c
        values[p] = v
        quality[p] = np.zeros(len(t), np.uint8)
    for p in MODEL_PARAMS:  # the spec's builder expects every model channel
        values.setdefault(p, np.full(len(t), np.nan))
        quality.setdefault(p, np.zeros(len(t), np.uint8))
    ends, rows = bucket_rows(t, values, quality)
    return PatientBuckets(patient, ends, rows)


def _ns(row: dict[str, Any]) -> float:
    return float(row["time"]) / 1e9


async def load_fleet(influx: InfluxWriter, since_s: int) -> FleetData:
    """Read summaries, verdicts and clinical events of the last ``since_s`` seconds from InfluxDB."""
    where = f"time > now() - {int(since_s)}s"
    params = " OR ".join(f"\"param\" = '{p}'" for p in READ_PARAMS)
    rows = await influx.rows(f'SELECT "mean", "count" FROM "vitals" WHERE {where} AND ({params}) '
                             f'GROUP BY "patient", "param"')
    acc: dict[str, dict[str, dict[int, tuple[float, int]]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        patient, param, mean, count = r.get("patient") or "", r.get("param") or "", r.get("mean"), r.get("count")
        if not patient or not isinstance(mean, int | float) or not isinstance(count, int) or count <= 0:
            continue
        if not math.isfinite(float(mean)):
            continue
        k = math.floor(_ns(r) / BUCKET_S)
        s, c = acc[patient][param].get(k, (0.0, 0))
        acc[patient][param][k] = (s + float(mean) * count, c + count)
    patients = [pb for p in sorted(acc) if (pb := patient_buckets(p, acc[p])) is not None]
    verdicts = [Feedback(str(r.get("patient", "")), _ns(r), str(r.get("verdict", "")), str(r.get("alarm_id", "")))
                for r in await influx.rows(f'SELECT * FROM "verdicts" WHERE {where}')]
    events = [ClinicalEventRow(str(r.get("patient", "")), _ns(r), str(r.get("code", "")))
              for r in await influx.rows(f'SELECT * FROM "clinical_events" WHERE {where}')]
    return FleetData(patients, verdicts, events)
