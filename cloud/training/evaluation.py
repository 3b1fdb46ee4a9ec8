"""Held-out evaluation of the vitals-anomaly model against NEWS2, through the gateway's real pipeline.

Held-out scenarios come from other seeds AND other generator parameters
(scenarios.heldout_params) than training and validation. They are written in
the replay CSV format and replayed in-process through clinical.replay (the same
ClinicalStage, profiles and model runner the gateway runs). For each alarm source:

- sensitivity: deteriorating patients with an alarm of that source raised
  between the deterioration's onset and its event (strict: an alarm raised
  earlier, in stable time, counts as a false alarm, not as a detection);
  ``sensitivity_active`` also counts an alarm raised before onset that was
  still active in that span;
- lead time: event time minus the first alarm raised in that span (minutes, median);
- false alarms per bed-day: alarms raised in stable time (stable patients, and
  deteriorating ones before onset), per 24 h of stable time;
- anomaly vs NEWS2: for patients both detect, how many minutes earlier the
  model's first alarm came than NEWS2's (>= 5, the urgent-response trigger).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cloud.training.scenarios import Scenario, generate, heldout_params, write_csv

SOURCES: dict[str, tuple[str, ...]] = {
    "anomaly": ("anomaly",),
    "news2_5": ("news2_medium", "news2_high"),
    "news2_7": ("news2_high",),
    "thresholds": ("threshold",),
}


@dataclass
class SourceMetrics:
    detected: int = 0
    active_detected: int = 0
    deteriorating: int = 0
    false_alarms: int = 0
    lead_min: list[float] = field(default_factory=list)

    def as_dict(self, stable_days: float) -> dict[str, Any]:
        return {
            "sensitivity": round(self.detected / self.deteriorating, 3) if self.deteriorating else None,
            "sensitivity_active": round(self.active_detected / self.deteriorating, 3) if self.deteriorating else None,
            "false_alarms_per_bed_day": round(self.false_alarms / stable_days, 2) if stable_days else None,
            "lead_time_min_median": round(float(np.median(self.lead_min)), 1) if self.lead_min else None,
            "detected": self.detected,
            "false_alarms": self.false_alarms,
        }


@dataclass
class Report:
    model_version: str
    seed: int
    scenarios: int
    deteriorating: int
    stable_bed_days: float
    by_source: dict[str, SourceMetrics]
    anomaly_earlier_than_news2_min: list[float]
    either_detected: int
    per_kind: dict[str, dict[str, int]]
    replay: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        e = self.anomaly_earlier_than_news2_min
        return {
            "model_version": self.model_version,
            "data": "SYNTHETIC held-out scenarios (cloud/training/scenarios.py, heldout_params)",
            "seed": self.seed,
            "scenarios": self.scenarios,
            "deteriorating": self.deteriorating,
            "stable_bed_days": round(self.stable_bed_days, 2),
            "sources": {k: v.as_dict(self.stable_bed_days) for k, v in self.by_source.items()},
            "anomaly_vs_news2_5": {
                "both_detected": len(e),
                "anomaly_earlier_min_median": round(float(np.median(e)), 1) if e else None,
                "anomaly_first_fraction": round(float(np.mean(np.array(e) > 0)), 3) if e else None,
            },
            "sensitivity_anomaly_or_news2_5": round(self.either_detected / self.deteriorating, 3)
            if self.deteriorating else None,
            "per_kind": self.per_kind,
            "replay": self.replay,
        }

    def manifest_metrics(self) -> dict[str, float | int | str | None]:
        d = self.as_dict()
        a, n = d["sources"]["anomaly"], d["sources"]["news2_5"]
        return {
            "heldout_seed": self.seed,
            "heldout_scenarios": self.scenarios,
            "heldout_sensitivity": a["sensitivity"],
            "heldout_false_alarms_per_bed_day": a["false_alarms_per_bed_day"],
            "heldout_lead_time_min": a["lead_time_min_median"],
            "heldout_news2_5_sensitivity": n["sensitivity"],
            "heldout_news2_5_false_alarms_per_bed_day": n["false_alarms_per_bed_day"],
            "heldout_news2_5_lead_time_min": n["lead_time_min_median"],
            "heldout_anomaly_earlier_than_news2_min": d["anomaly_vs_news2_5"]["anomaly_earlier_min_median"],
        }

    def table(self) -> str:
        d = self.as_dict()
        lines = [f"held-out: {self.scenarios} synthetic scenarios (seed {self.seed}), {self.deteriorating} "
                 f"deteriorating, {d['stable_bed_days']} stable bed-days",
                 f"{'source':12} {'sensitivity':>11} {'(active)':>9} {'FA/bed-day':>11} {'lead min':>9}"]
        for k, v in d["sources"].items():
            lines.append(f"{k:12} {v['sensitivity']!s:>11} {v['sensitivity_active']!s:>9} "
                         f"{v['false_alarms_per_bed_day']!s:>11} "
                         f"{v['lead_time_min_median']!s:>9}")
        lines.append(f"anomaly vs NEWS2>=5: {d['anomaly_vs_news2_5']}")
        return "\n".join(lines)


def run_replay(csv_path: Path, model_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The gateway's clinical core (clinical.replay, default profile) over ``csv_path`` with the model in
    ``model_dir``: every alarm state change, and the replay's summary."""
    from clinical.anomaly import VitalsAnomalyModel
    from clinical.replay import replay

    scorer = VitalsAnomalyModel(model_dir)
    alarms: list[dict[str, Any]] = []
    stats = replay(csv_path, alarms.append, scorer=scorer, events=True)
    return alarms, {**stats.as_dict(), "model": scorer.version}


Scored = tuple[dict[str, SourceMetrics], float, list[float], int, dict[str, dict[str, int]]]


def intervals(records: list[dict[str, Any]], end: float) -> dict[str, list[tuple[dict[str, Any], float, float]]]:
    """Per patient: (raise record, raised at, cleared at or ``end``) of every physiological alarm."""
    opened: dict[str, tuple[dict[str, Any], float]] = {}
    out: dict[str, list[tuple[dict[str, Any], float, float]]] = {}
    for r in records:
        if r["kind"] != "physiological":
            continue
        if r["event"] == "raised" and r["alarm_id"] not in opened:
            opened[r["alarm_id"]] = (r, float(r["epoch"]))
        elif r["event"] == "cleared" and r["alarm_id"] in opened:
            raise_rec, t = opened.pop(r["alarm_id"])
            out.setdefault(raise_rec["patient"], []).append((raise_rec, t, float(r["epoch"])))
    for raise_rec, t in opened.values():
        out.setdefault(raise_rec["patient"], []).append((raise_rec, t, end))
    return out


def score(scenarios: list[Scenario], alarms: list[dict[str, Any]]) -> Scored:
    end = max((s.start + s.duration_s for s in scenarios), default=0.0)
    by_patient = intervals(alarms, end)
    metrics = {k: SourceMetrics() for k in SOURCES}
    stable_s = 0.0
    earlier: list[float] = []
    either = 0
    per_kind: dict[str, dict[str, int]] = {}
    for sc in scenarios:
        pa = by_patient.get(sc.patient, [])
        onset = sc.start + sc.onset_s if sc.onset_s is not None else None
        event = sc.start + sc.event_s if sc.event_s is not None else None
        stable_end = onset if onset is not None else sc.start + sc.duration_s
        stable_s += stable_end - sc.start
        first: dict[str, float | None] = {}
        for name, keys in SOURCES.items():
            mine = [(r, t0, t1) for r, t0, t1 in pa if r["condition"] in keys or r["source"] in keys]
            m = metrics[name]
            m.false_alarms += sum(1 for _, t0, _ in mine if t0 < stable_end)
            first[name] = None
            if onset is not None and event is not None:
                m.deteriorating += 1
                m.active_detected += any(t0 <= event and t1 >= onset for _, t0, t1 in mine)
                hits = [t0 for _, t0, _ in mine if onset <= t0 <= event]
                if hits:
                    m.detected += 1
                    first[name] = min(hits)
                    m.lead_min.append((event - min(hits)) / 60.0)
        if onset is not None:
            k = per_kind.setdefault(sc.kind, {"n": 0, "anomaly": 0, "news2_5": 0})
            k["n"] += 1
            k["anomaly"] += first["anomaly"] is not None
            k["news2_5"] += first["news2_5"] is not None
            fa, fn = first["anomaly"], first["news2_5"]
            if fa is not None or fn is not None:
                either += 1
            if fa is not None and fn is not None:
                earlier.append((fn - fa) / 60.0)
    return metrics, stable_s / 86400.0, earlier, either, per_kind


def evaluate(model_dir: Path, count: int = 80, seed: int = 9001, hours: float = 12.0,
             workdir: Path | None = None) -> Report:
    from dataclasses import replace

    gp = replace(heldout_params(), hours=hours)
    scenarios = [generate(seed, i, gp) for i in range(count)]
    with tempfile.TemporaryDirectory() as tmp:
        wd = workdir or Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        csv_path = wd / "heldout.csv"
        write_csv(scenarios, csv_path)
        alarms, summary = run_replay(csv_path, model_dir)
        if workdir is not None:
            (wd / "alarms.jsonl").write_text("".join(json.dumps(a) + "\n" for a in alarms))
    metrics, stable_days, earlier, either, per_kind = score(scenarios, alarms)
    version = json.loads((model_dir / "manifest.json").read_text()).get("version", "?")
    return Report(version, seed, count, sum(1 for s in scenarios if s.deteriorating), stable_days, metrics, earlier,
                  either, per_kind, summary)
