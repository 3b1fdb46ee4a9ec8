"""Replay a recorded CSV through the real clinical pipeline, as fast as the CPU allows.

Columns (header required, any order): ``timestamp`` (ISO 8601 or epoch
seconds), ``patient``, ``parameter``, ``value``. Parameters: heart_rate, spo2,
resp_rate, nibp_sys, nibp_dia, temperature (numbers; an empty value = no
valid reading), consciousness (A, C, V, P or U), on_oxygen (0/1), spo2_scale2
(0/1). Each patient is one bed. Time is the CSV's: samples carry their
timestamp as receive time and the stage ticks every ``tick_s`` of recorded
time, so delays, escalation and the anomaly model's minute buckets behave as
they would have live. Rows should be in time order; a row older than the
replay clock is still applied to its bed but does not move the clock back.

Bad rows are counted per reason (and the first few line numbers kept), never
fatal: the good rows around them still count.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from clinical.alarms.model import AlarmUpdate, Event
from clinical.alarms.profiles import ClinicalConfig
from clinical.anomaly import AnomalyScorer
from clinical.parameters import PARAMETERS
from clinical.sample import Quality, Sample
from clinical.stage import ClinicalStage

NUMERIC = frozenset({"heart_rate", "pulse_rate", "spo2", "resp_rate", "nibp_sys", "nibp_dia", "nibp_mean",
                     "temperature"})
CONTEXT = frozenset({"consciousness", "on_oxygen", "spo2_scale2"})
REQUIRED = ("timestamp", "patient", "parameter", "value")


class ReplayError(ValueError):
    """The file cannot be replayed at all (missing, no header, missing columns)."""


@dataclass
class ReplayStats:
    rows: int = 0
    samples: int = 0
    invalid_samples: int = 0
    context_rows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    rejected_lines: list[int] = field(default_factory=list)
    alarms_raised: int = 0
    patients: int = 0
    first_time: float | None = None
    last_time: float | None = None
    anomaly_invokes: int = 0

    def reject(self, reason: str, line: int) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        if len(self.rejected_lines) < 20:
            self.rejected_lines.append(line)

    def as_dict(self) -> dict[str, Any]:
        span = (self.last_time - self.first_time) if self.first_time is not None and self.last_time else 0.0
        return {"rows": self.rows, "samples": self.samples, "invalid_samples": self.invalid_samples,
                "context_rows": self.context_rows, "rejected": self.rejected,
                "rejected_lines": self.rejected_lines, "alarms_raised": self.alarms_raised,
                "patients": self.patients, "recorded_hours": round(span / 3600.0, 3),
                "anomaly_invokes": self.anomaly_invokes}


def parse_time(text: str) -> float:
    """Epoch seconds or ISO 8601 (a naive time is taken as UTC)."""
    text = text.strip()
    try:
        v = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(v):
            raise ValueError("timestamp is not finite")
        return v
    d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return d.timestamp()


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alarm_record(u: AlarmUpdate) -> dict[str, Any]:
    a = u.alarm
    return {"time": iso(a.t_wall), "epoch": round(a.t_wall, 3), "alarm_id": a.alarm_id, "patient": a.patient,
            "bed": a.bed,
            "priority": a.priority.label, "kind": a.kind.value, "source": a.source, "condition": a.condition,
            "score": a.score, "value": a.value, "param": a.param, "event": u.event.value}


def _rows(f: IO[str]) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(f)
    for row in reader:
        yield reader.line_num, row


def replay(
    source: Path | IO[str],
    out: Callable[[dict[str, Any]], None],
    config: ClinicalConfig | None = None,
    scorer: AnomalyScorer | None = None,
    tick_s: float = 1.0,
    forget_after_s: float = 3600.0,
    events: bool = False,
) -> ReplayStats:
    """Replay ``source``; ``out`` gets one dict per alarm raised (every state change if ``events``)."""
    stats = ReplayStats()
    now = [-math.inf]

    def sink(u: AlarmUpdate) -> None:
        if u.event is Event.RAISED and not u.detail:
            stats.alarms_raised += 1
            out(alarm_record(u))
        elif events:
            rec = alarm_record(u)
            rec["time"], rec["epoch"] = iso(now[0]), round(now[0], 3)
            out(rec)

    stage = ClinicalStage(config or ClinicalConfig(), sinks=[sink], scorer=scorer, clock=lambda: now[0],
                          wall=lambda: now[0], id_base=0)
    last_seen: dict[str, float] = {}
    if isinstance(source, Path):
        try:
            f: IO[str] = source.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise ReplayError(f"{source}: {exc.strerror}") from None
    else:
        f = source
    try:
        rows = _rows(f)
        try:
            _, header = next(rows)
        except StopIteration:
            raise ReplayError("empty file: expected a header timestamp,patient,parameter,value") from None
        cols = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED if c not in cols]
        if missing:
            raise ReplayError(f"header lacks column(s) {', '.join(missing)}; found {', '.join(cols)}")
        it, ip, ipar, iv = (cols.index(c) for c in REQUIRED)
        width = max(it, ip, ipar, iv) + 1
        next_tick = -math.inf
        next_gc = -math.inf
        for line, row in rows:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            stats.rows += 1
            if len(row) < width:
                stats.reject("short_row", line)
                continue
            try:
                t = parse_time(row[it])
            except ValueError:
                stats.reject("bad_timestamp", line)
                continue
            patient = row[ip].strip()
            if not patient:
                stats.reject("no_patient", line)
                continue
            param = row[ipar].strip()
            raw = row[iv].strip()
            if t > now[0]:
                if t >= next_tick:
                    if next_tick != -math.inf:
                        now[0] = next_tick
                        stage.tick(next_tick, next_tick)
                    next_tick = (math.floor(t / tick_s) + 1) * tick_s
                now[0] = t
                if stats.first_time is None:
                    stats.first_time = t
                stats.last_time = t
            if patient not in last_seen:
                stats.patients += 1
            last_seen[patient] = t
            if param in NUMERIC:
                if raw:
                    try:
                        value = float(raw)
                    except ValueError:
                        stats.reject("bad_value", line)
                        continue
                    if not math.isfinite(value):
                        stats.reject("bad_value", line)
                        continue
                    q = Quality.VALID
                else:
                    value, q = math.nan, Quality.UNAVAILABLE
                    stats.invalid_samples += 1
                stats.samples += 1
                stage.on_sample(Sample(patient, param, value, PARAMETERS[param].unit, t, t, q, patient=patient))
            elif param in CONTEXT:
                if not _context(stage, patient, param, raw):
                    stats.reject(f"bad_{param}", line)
                    continue
                stats.context_rows += 1
            else:
                stats.reject("unknown_parameter", line)
                continue
            if t >= next_gc:  # patients silent for an hour are discharged (their beds stop ticking)
                next_gc = t + 600.0
                for p, seen in list(last_seen.items()):
                    if t - seen > forget_after_s:
                        stage.forget_bed(p)
                        del last_seen[p]
        if next_tick != -math.inf:
            now[0] = max(now[0], next_tick)
            stage.tick(now[0], now[0])
    finally:
        if isinstance(source, Path):
            f.close()
    stats.anomaly_invokes = stage.anomaly_batches
    return stats


def _context(stage: ClinicalStage, bed: str, param: str, raw: str) -> bool:
    if not raw:
        return True  # no reading: keep the current context
    if param == "consciousness":
        level = raw.upper()
        if level not in ("A", "C", "V", "P", "U"):
            return False
        stage.set_context(bed, consciousness=level)
        return True
    if raw not in ("0", "1"):
        return False
    if param == "on_oxygen":
        stage.set_context(bed, on_oxygen=raw == "1")
    else:
        stage.set_context(bed, scale2=raw == "1")
    return True
