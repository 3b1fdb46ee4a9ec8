"""Score any alarm stream against labelled ward scenarios, side by side with NEWS2 and bedside thresholds.

Alarms are the JSON records ``pulsegate replay --json`` prints (``epoch``, ``patient``, ``priority``,
``source``, ``condition``, ``event``; only ``raised`` records count). Labels are the JSON lines of
cloud/training/ward_scenarios.py (patient, kind, start, stop, onset, half, end, life_threatening,
validated). Figures, for medium and high priority unless named otherwise:

- sensitivity: deteriorating patients with an alarm from 10 min before onset to 30 min after the end;
- false-alarm episodes per patient-day of stable time (stable patients, and deteriorating ones up to
  10 min before onset); alarms less than 5 min after the previous one merge into one episode;
  by priority and by source;
- lead before the deterioration is half developed (half - first alarm in the window), median and
  10th percentile, minutes (positive = earlier); also the median without the life-threatening events
  (half developed seconds after onset: judged by their time to alarm instead);
- alarm burden: every alarm raised (low included), per bed-day, by priority;
- life-threatening events: seconds from validation to the first medium/high alarm in the window; also
  from the first *recorded* row beyond the life-threatening limit (resp <= 4, HR >= 160), which is what
  a record exported every 15 or 60 s allows (its first row after the true validation may be a minute late).

The NEWS2 reference is computed here from the same rows: the score on 5-minute medians (each
minute), >= 5 or a 3 in one parameter held for 5 minutes raises an alarm (>= 7 high, else medium).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cloud.training.ward_scenarios import WardLabel

PRE_S, POST_S, MERGE_S = 600.0, 1800.0, 300.0
SERIOUS = ("medium", "high")


@dataclass
class StreamMetrics:
    name: str
    deteriorating: int = 0
    detected: int = 0
    stable_days: float = 0.0
    bed_days: float = 0.0
    fa_episodes: int = 0
    fa_by_priority: dict[str, int] = field(default_factory=dict)
    fa_by_source: dict[str, int] = field(default_factory=dict)
    fa_by_condition: dict[str, int] = field(default_factory=dict)  # the condition that opened the episode
    burden: dict[str, int] = field(default_factory=dict)
    leads_min: list[float] = field(default_factory=list)
    leads_non_lt_min: list[float] = field(default_factory=list)  # without the life-threatening events
    lt_events: int = 0
    lt_times_s: list[float] = field(default_factory=list)  # inf: never alarmed
    lt_times_recorded_s: list[float] = field(default_factory=list)  # from the first recorded row beyond
    missed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        lt = self.lt_times_s
        finite = [x for x in lt if math.isfinite(x)]
        sd = max(self.stable_days, 1e-9)
        return {
            "sensitivity": round(self.detected / self.deteriorating, 3) if self.deteriorating else None,
            "detected": self.detected, "deteriorating": self.deteriorating,
            "fa_episodes_per_patient_day": round(self.fa_episodes / sd, 3),
            "fa_episodes": self.fa_episodes,
            "fa_by_priority_per_day": {k: round(v / sd, 3) for k, v in sorted(self.fa_by_priority.items())},
            "fa_by_source_per_day": {k: round(v / sd, 3) for k, v in sorted(self.fa_by_source.items())},
            "fa_by_condition_per_day": {k: round(v / sd, 3) for k, v in sorted(self.fa_by_condition.items())},
            "lead_min_median": round(float(np.median(self.leads_min)), 1) if self.leads_min else None,
            "lead_min_p10": round(float(np.percentile(self.leads_min, 10)), 1) if self.leads_min else None,
            "lead_min_median_non_lt": round(float(np.median(self.leads_non_lt_min)), 1)
            if self.leads_non_lt_min else None,
            "burden_per_bed_day": {k: round(v / max(self.bed_days, 1e-9), 2) for k, v in sorted(self.burden.items())},
            "life_threatening": self.lt_events,
            "lt_alarmed_within_10s": sum(1 for x in lt if x <= 10.0),
            "lt_time_to_alarm_s_max": round(max(finite), 1) if finite else None,
            "lt_time_to_alarm_s_median": round(float(np.median(finite)), 1) if finite else None,
            "lt_alarmed_within_10s_recorded": sum(1 for x in self.lt_times_recorded_s if x <= 10.0),
            "lt_time_to_alarm_recorded_s_max": round(max(self.lt_times_recorded_s), 1)
            if self.lt_times_recorded_s and all(map(math.isfinite, self.lt_times_recorded_s)) else None,
            "stable_patient_days": round(self.stable_days, 2),
            "missed": self.missed[:20],
        }


def raised(alarms: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Raised alarms per patient, in time order (re-announcements after a silence are not new alarms)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for a in alarms:
        if a.get("event", "raised") != "raised" or a.get("resumed"):
            continue
        out.setdefault(str(a["patient"]), []).append(a)
    for v in out.values():
        v.sort(key=lambda a: float(a["epoch"]))
    return out


def recorded_validation(labels: list[WardLabel], rows: dict[str, dict[str, list[tuple[float, str]]]],
                        ) -> dict[str, float]:
    """Per life-threatening patient: the first recorded row at or after onset beyond the life-threatening
    limit (resp <= 4 for respiratory arrest, HR >= 160 for ventricular tachycardia)."""
    out: dict[str, float] = {}
    for lab in labels:
        if not lab.life_threatening or lab.onset is None:
            continue
        resp = lab.kind == "resp_arrest"
        for t, raw in rows.get(lab.patient, {}).get("resp_rate" if resp else "heart_rate", []):
            if t >= lab.onset and raw and _isnum(raw) and (float(raw) <= 4.0 if resp else float(raw) >= 160.0):
                out[lab.patient] = t
                break
    return out


def score_stream(name: str, labels: list[WardLabel], alarms: Iterable[dict[str, Any]],
                 recorded: dict[str, float] | None = None) -> StreamMetrics:
    m = StreamMetrics(name)
    by_patient = raised(alarms)
    for lab in labels:
        mine = by_patient.get(lab.patient, [])
        m.bed_days += (lab.stop - lab.start) / 86400.0
        for a in mine:
            m.burden[a["priority"]] = m.burden.get(a["priority"], 0) + 1
        serious = [a for a in mine if a["priority"] in SERIOUS]
        stable_end = lab.stop if lab.onset is None else max(lab.start, lab.onset - PRE_S)
        m.stable_days += (stable_end - lab.start) / 86400.0
        last_fa = -math.inf
        for a in serious:
            t = float(a["epoch"])
            if t >= stable_end:
                break
            if t - last_fa >= MERGE_S:
                m.fa_episodes += 1
                m.fa_by_priority[a["priority"]] = m.fa_by_priority.get(a["priority"], 0) + 1
                src = str(a.get("source", "?"))
                m.fa_by_source[src] = m.fa_by_source.get(src, 0) + 1
                cond = str(a.get("condition", "?"))
                m.fa_by_condition[cond] = m.fa_by_condition.get(cond, 0) + 1
            last_fa = t
        if lab.onset is None or lab.end is None:
            continue
        m.deteriorating += 1
        hits = [float(a["epoch"]) for a in serious if lab.onset - PRE_S <= float(a["epoch"]) <= lab.end + POST_S]
        if hits:
            m.detected += 1
            if lab.half is not None:
                m.leads_min.append((lab.half - hits[0]) / 60.0)
                if not lab.life_threatening:
                    m.leads_non_lt_min.append((lab.half - hits[0]) / 60.0)
        else:
            m.missed.append(f"{lab.patient}:{lab.kind}")
        if lab.life_threatening and lab.validated is not None:
            m.lt_events += 1
            after = [h for h in hits if h >= lab.validated - 60.0]
            m.lt_times_s.append(max(0.0, after[0] - lab.validated) if after else math.inf)
            rv = (recorded or {}).get(lab.patient)
            if rv is not None:
                late = [h for h in hits if h >= rv - 60.0]
                m.lt_times_recorded_s.append(max(0.0, late[0] - rv) if late else math.inf)
    return m


# -- NEWS2 reference ------------------------------------------------------------------------------------
def _score_news2(rr: float, spo2: float, sbp: float, hr: float, temp: float, o2: bool, scale2: bool,
                 alert: bool) -> tuple[int, bool]:
    from clinical.news2 import news2

    def opt(x: float) -> float | None:
        return None if x != x else x

    n = news2(resp_rate=opt(rr), spo2=opt(spo2), systolic=opt(sbp), pulse=opt(hr), temperature=opt(temp),
              on_oxygen=o2, consciousness="A" if alert else "C", scale2=scale2)
    return n.total, n.single_parameter_3


def read_rows(path: Path) -> dict[str, dict[str, list[tuple[float, str]]]]:
    """Per patient, per parameter: (time, raw value) rows of a replay CSV (any row order)."""
    out: dict[str, dict[str, list[tuple[float, str]]]] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        r = csv.reader(f)
        head = [h.strip().lower() for h in next(r)]
        it, ip, ipar, iv = (head.index(c) for c in ("timestamp", "patient", "parameter", "value"))
        for row in r:
            try:
                t = float(row[it])
            except (ValueError, IndexError):
                continue
            out.setdefault(row[ip], {}).setdefault(row[ipar], []).append((t, row[iv].strip()))
    for per in out.values():
        for v in per.values():
            v.sort()
    return out


def news2_reference(rows: dict[str, dict[str, list[tuple[float, str]]]], hold_min: int = 5) -> list[dict[str, Any]]:
    alarms: list[dict[str, Any]] = []
    for patient, per in rows.items():
        series = {p: [(t, float(v)) for t, v in per.get(p, []) if v and _isnum(v)]
                  for p in ("heart_rate", "pulse_rate", "spo2", "resp_rate", "nibp_sys", "temperature")}
        ctx = {p: [(t, v) for t, v in per.get(p, [])] for p in ("on_oxygen", "spo2_scale2", "consciousness")}
        times = [t for s in series.values() for t, _ in s]
        if not times:
            continue
        t0, t1 = math.floor(min(times) / 60.0) * 60.0, max(times)
        arr = {p: (np.array([t for t, _ in s]), np.array([v for _, v in s])) for p, s in series.items()}
        run, on = 0, False
        for m in np.arange(t0 + 300.0, t1 + 60.0, 60.0):
            def med(p: str, m: float = float(m), arr: dict[str, tuple[Any, Any]] = arr) -> float:
                ts, vs = arr[p]
                lo, hi = np.searchsorted(ts, m - 300.0), np.searchsorted(ts, m)
                return float(np.median(vs[lo:hi])) if hi > lo else math.nan

            def last(p: str, age: float, m: float = float(m), arr: dict[str, tuple[Any, Any]] = arr) -> float:
                ts, vs = arr[p]
                k = np.searchsorted(ts, m) - 1
                return float(vs[k]) if k >= 0 and m - ts[k] <= age else math.nan

            hr = med("heart_rate")
            if hr != hr:
                hr = med("pulse_rate")
            o2 = _ctx(ctx["on_oxygen"], m) == "1"
            s2 = _ctx(ctx["spo2_scale2"], m) == "1"
            alert = _ctx(ctx["consciousness"], m) in ("", "A")
            total, three = _score_news2(med("resp_rate"), med("spo2"), last("nibp_sys", 3600.0), hr,
                                        last("temperature", 4 * 3600.0), o2, s2, alert)
            cond = total >= 5 or three
            run = run + 1 if cond else 0
            if run >= hold_min and not on:
                on = True
                alarms.append({"patient": patient, "epoch": float(m), "priority": "high" if total >= 7 else "medium",
                               "source": "news2", "condition": "news2_ref", "event": "raised"})
            elif not cond:
                on = False
    return alarms


def _isnum(v: str) -> bool:
    try:
        return math.isfinite(float(v))
    except ValueError:
        return False


def _ctx(rows: list[tuple[float, str]], t: float) -> str:
    cur = ""
    for tt, v in rows:
        if tt > t:
            break
        cur = v
    return cur


def table(metrics: list[StreamMetrics]) -> str:
    ds = [(m, m.name, m.as_dict()) for m in metrics]
    lines = [f"{'stream':14} {'sens':>6} {'FA ep/pt-day':>12} {'lead med':>9} {'lead p10':>9} {'LT<=10s':>8} "
             f"{'LT max s':>8} {'rec<=10s':>8} {'burden/bed-day (h/m/l)':>24}"]
    for m, name, d in ds:
        b = d["burden_per_bed_day"]
        lt = f"{d['lt_alarmed_within_10s']}/{d['life_threatening']}"
        rec = f"{d['lt_alarmed_within_10s_recorded']}/{len(m.lt_times_recorded_s)}"
        lines.append(f"{name:14} {d['sensitivity']!s:>6} {d['fa_episodes_per_patient_day']!s:>12} "
                     f"{d['lead_min_median']!s:>9} {d['lead_min_p10']!s:>9} {lt:>8} "
                     f"{d['lt_time_to_alarm_s_max']!s:>8} {rec:>8} "
                     f"{b.get('high', 0)!s:>8}/{b.get('medium', 0)!s}/{b.get('low', 0)!s}")
    return "\n".join(lines)


# -- running the pipeline ---------------------------------------------------------------------------------
def replay_alarms(csv_path: Path, config: Any, scorer: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The real replay (clinical/replay.py) over ``csv_path``: its raised alarms and summary (with rows/s)."""
    import time

    from clinical.replay import replay

    got: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    stats = replay(csv_path, got.append, config, scorer)
    dt = time.perf_counter() - t0
    summary = stats.as_dict()
    summary["seconds"] = round(dt, 2)
    summary["rows_per_s"] = round(stats.rows / dt) if dt > 0 else None
    return got, summary


def evaluate(csv_path: Path, labels: list[WardLabel], default_config: Any, bedside_config: Any,
             scorer: Any = None) -> dict[str, Any]:
    """The default profile (with the model when ``scorer`` is given, and then also without it: the rules
    and NEWS2 alone), the bedside thresholds and the NEWS2 reference on the same rows."""
    rows = read_rows(csv_path)
    rec = recorded_validation(labels, rows)
    mine, s_mine = replay_alarms(csv_path, default_config, scorer)
    streams = [score_stream("default+model" if scorer is not None else "default", labels, mine, rec)]
    out: dict[str, Any] = {"replay_default": s_mine}
    if scorer is not None:
        rules, s_rules = replay_alarms(csv_path, default_config, None)
        streams.append(score_stream("default", labels, rules, rec))
        out["replay_rules"] = s_rules
    bed, s_bed = replay_alarms(csv_path, bedside_config, None)
    ref = news2_reference(rows)
    del rows
    streams += [score_stream("news2", labels, ref, rec), score_stream("bedside", labels, bed, rec)]
    return {**out, "streams": {m.name: m.as_dict() for m in streams}, "table": table(streams),
            "replay_bedside": s_bed,
            "patients": len(labels), "deteriorating": sum(1 for lab in labels if lab.onset is not None)}
