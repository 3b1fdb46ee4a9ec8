"""Replay a recorded CSV through the real clinical pipeline, as fast as the CPU allows.

Columns (header required, any order): ``timestamp`` (ISO 8601 or epoch
seconds; epoch milliseconds and microseconds are recognised by their size),
``patient``, ``parameter``, ``value``; or a wide export with
``timestamp``, ``patient`` and a column per parameter, and common names for
the parameters (clinical/replay_columns.py). Parameters: heart_rate,
pulse_rate, spo2, perfusion_index, resp_rate, nibp_sys, nibp_dia, nibp_mean,
temperature (numbers; an empty value = no valid reading), consciousness (A, C,
V, P or U), on_oxygen (0/1), spo2_scale2 (0/1). Each patient is one bed with
its own stage and its own clock: a bed's state only ever advances on its own
rows, and ticks every ``tick_s`` of that patient's recorded time (through
short gaps too), so delays, escalation, the trend's and the anomaly model's
minute buckets behave as they would have live, whatever the row order.

Row order: grouped by patient, sorted by time, interleaved, or rows moved by
up to ``reorder_s`` seconds all give identical output (clinical/reorder.py:
canonical order per patient, duplicates counted, a row further back than
``reorder_s`` behind its patient's newest row counted as late and never
applied). Alarm ids are numbered per patient; the output is sorted by (time,
patient, order within the patient) once the file is read. A patient silent
for ``forget_after_s`` is discharged; a later row starts a new stay.

Memory: per patient one stage (a few kB) and at most ~512 buffered rows; the
alarms until the end. A 100-bed, 24-hour file (~40 million rows) needs about
10-20 MB whatever its order.

The delimiter is read from the header: a comma, or a semicolon, tab or bar when the header holds more
of those than commas (a European export: with a semicolon or tab, ``80,5`` is a decimal comma).

Bad rows are counted per reason (and the first few line numbers kept), never
fatal: the good rows around them still count.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import itertools
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from clinical.alarms.model import AlarmUpdate, Event
from clinical.alarms.profiles import ClinicalConfig
from clinical.anomaly import AnomalyScorer
from clinical.parameters import PARAMETERS
from clinical.reorder import OrderStats, Reorderer
from clinical.replay_columns import Layout, WideRows, canonical
from clinical.sample import Quality, Sample
from clinical.stage import ClinicalStage

NUMERIC = frozenset({"heart_rate", "pulse_rate", "spo2", "resp_rate", "nibp_sys", "nibp_dia", "nibp_mean",
                     "temperature", "perfusion_index"})
CONTEXT = frozenset({"consciousness", "on_oxygen", "spo2_scale2"})
UNITS = {p: PARAMETERS[p].unit for p in NUMERIC}
_VALID, _UNAVAILABLE = Quality.VALID, Quality.UNAVAILABLE  # an enum member read from its class costs ~0.1 us


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
    order: OrderStats = field(default_factory=OrderStats)
    ignored_columns: list[str] = field(default_factory=list)  # a wide file's columns that are no parameter

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
                "anomaly_invokes": self.anomaly_invokes, **self.order.as_dict(),
                **({"ignored_columns": self.ignored_columns} if self.ignored_columns else {})}


# Epoch values past these are milliseconds, then microseconds: 1e11 s is the year 5138, 1e11 ms 1973.
_EPOCH_MS, _EPOCH_US = 1e11, 1e14
DELIMITERS = (",", ";", "\t", "|")


def epoch_seconds(v: float) -> float:
    """An epoch number in seconds, whether it was written in seconds, milliseconds or microseconds."""
    if v < _EPOCH_MS:
        return v
    return v / 1e3 if v < _EPOCH_US else v / 1e6


def header_delimiter(line: str) -> str:
    """The header's delimiter: a comma unless a semicolon, tab or bar is more frequent in it."""
    best = max(DELIMITERS, key=line.count)
    return best if line.count(best) > line.count(",") else ","


def open_text(path: Path) -> IO[str]:
    """A CSV file as text, gzip-compressed or not (told by its magic bytes); bytes that are not UTF-8 (a
    Windows-1252 degree sign in a header) become U+FFFD instead of stopping the replay."""
    try:
        with path.open("rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        if gz:
            return gzip.open(path, "rt", newline="", encoding="utf-8-sig", errors="replace")
        return path.open(newline="", encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise ReplayError(f"cannot open: {exc.strerror}") from None


def _comma_float(text: str) -> float:
    """``80,5`` as 80.5 (a decimal comma); NaN when it is no number either way."""
    try:
        return float(text.replace(",", ".", 1))
    except ValueError:
        return math.nan


def parse_time(text: str) -> float:
    """Epoch seconds (or milliseconds, microseconds) or ISO 8601 (a naive time is taken as UTC)."""
    text = text.strip()
    try:
        v = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(v):
            raise ValueError("timestamp is not finite")
        return epoch_seconds(v)
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
            "score": a.score, "value": a.value, "param": a.param, "event": u.event.value, "reason": a.reason}


class _Patient:
    """One patient's own stage and clock: its state only ever advances on its own rows."""

    __slots__ = ("last", "next_tick", "now", "sample", "seq", "stage")

    def __init__(self, stage: ClinicalStage, now: list[float], patient: str) -> None:
        self.stage = stage
        self.sample = Sample(patient, "", math.nan, "", 0.0, 0.0, Quality.VALID, patient=patient)  # reused
        self.now = now
        self.next_tick = -math.inf
        self.last = -math.inf
        self.seq = 0


def replay(
    source: Path | IO[str],
    out: Callable[[dict[str, Any]], None],
    config: ClinicalConfig | None = None,
    scorer: AnomalyScorer | None = None,
    tick_s: float = 1.0,
    forget_after_s: float = 3600.0,
    events: bool = False,
    reorder_s: float = 10.0,
    shard: tuple[int, int] | None = None,
) -> ReplayStats:
    """Replay ``source``; ``out`` gets one dict per alarm raised (every state change if ``events``), in
    (time, patient, order within the patient) order once the whole file is read.

    ``shard=(k, n)``: only the patients whose :func:`shard_of` is k (a process of a parallel replay; rows
    without a patient belong to the shard of ""), so n processes together replay the file once."""
    stats = ReplayStats()
    cfg = config or ClinicalConfig()
    records: list[tuple[float, str, int, dict[str, Any]]] = []
    patients: dict[str, _Patient] = {}

    def new_patient(patient: str) -> _Patient:
        now = [-math.inf]
        holder: list[_Patient] = []

        def sink(u: AlarmUpdate) -> None:
            p = holder[0]
            if u.event is Event.RAISED and not u.detail:
                stats.alarms_raised += 1
                rec = alarm_record(u)
            elif events:
                rec = alarm_record(u)
                rec["time"], rec["epoch"] = iso(now[0]), round(now[0], 3)
            else:
                return
            p.seq += 1
            records.append((rec["epoch"], patient, p.seq, rec))

        stage = ClinicalStage(cfg, sinks=[sink], scorer=scorer, clock=lambda: now[0], wall=lambda: now[0],
                              id_base=0)
        p = _Patient(stage, now, patient)
        holder.append(p)
        patients[patient] = p
        stats.patients += 1
        return p

    def tick_to(p: _Patient, t: float) -> None:
        """Tick the patient's stage at every tick boundary up to ``t`` (through short gaps too)."""
        nt = p.next_tick
        if nt == -math.inf:
            p.next_tick = (math.floor(t / tick_s) + 1) * tick_s
            return
        now, stage = p.now, p.stage
        while t >= nt:
            now[0] = nt
            stage.tick(nt, nt)
            nt += tick_s
        p.next_tick = nt

    span = [math.inf, -math.inf]  # first and last time delivered

    def deliver(patient: str, t: float, param: str, raw: str, line: int, value: float) -> None:
        p = patients.get(patient) or new_patient(patient)
        if t - p.last > forget_after_s and p.last != -math.inf:  # silent for an hour: discharged, a new stay
            p.stage.forget_bed(patient)
            p.next_tick = -math.inf
        p.last = t
        if t >= p.next_tick:
            tick_to(p, t)
        p.now[0] = t
        if t < span[0]:
            span[0] = t
        if t > span[1]:
            span[1] = t
        if param in NUMERIC:
            sm = p.sample  # the stage keeps no reference to a sample: one object per patient, refilled
            if raw:
                sm.value, sm.quality = value, _VALID
            else:
                sm.value, sm.quality = math.nan, _UNAVAILABLE
                stats.invalid_samples += 1
            sm.parameter = param
            sm.unit = UNITS[param]
            sm.recv_mono = sm.recv_wall = t
            p.stage.on_sample(sm)  # counts it (ClinicalStage.samples): stats.samples is their sum
        else:
            _context(p.stage, patient, param, raw)
            stats.context_rows += 1

    order = Reorderer(deliver, reorder_s)
    if isinstance(source, Path):
        f: IO[str] = open_text(source)
    else:
        f = source
    try:
        first = f.readline()
        if not first.strip():
            raise ReplayError("empty file: expected a header timestamp,patient,parameter,value")
        delimiter = header_delimiter(first)
        decimal_comma = delimiter in (";", "\t")  # as docs say: not with a bar
        reader = csv.reader(itertools.chain((first,), f), delimiter=delimiter)
        header = next(reader)
        layout = Layout(header)
        if layout.missing:
            raise ReplayError(f"header lacks column(s) {', '.join(layout.missing)} (or, for a wide export, a "
                              f"column per parameter); found {', '.join(layout.found)}")
        if layout.wide:
            reader = WideRows(reader, layout)  # type: ignore[assignment]
            stats.ignored_columns = layout.ignored
            it, ip, ipar, iv = 0, 1, 2, 3
        else:
            it, ip, ipar, iv = (i or 0 for i in (layout.time, layout.patient, layout.parameter, layout.value))
        width = max(it, ip, ipar, iv) + 1
        push = order.push
        mine: dict[str, bool] = {}
        numeric, context, known = NUMERIC, CONTEXT, NUMERIC | CONTEXT
        nan, inf, epoch_ms = math.nan, math.inf, _EPOCH_MS
        rows = 0  # stats.rows, counted in a local
        last_text: str | None = None  # the previous row's timestamp text and its time
        last_t = nan
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if shard is not None:
                key = row[ip].strip() if len(row) > ip else ""
                own = mine.get(key)
                if own is None:
                    own = mine[key] = shard_of(key, shard[1]) == shard[0]
                if not own:
                    continue
            rows += 1
            if len(row) < width:
                stats.reject("short_row", line)
                continue
            text = row[it]
            if text != last_text:  # the rows of one instant share their timestamp text: each is parsed once
                try:
                    t = float(text)  # epoch seconds (the common case), else ISO 8601
                    if t - t != 0.0:
                        raise ValueError("timestamp is not finite")
                    if t >= epoch_ms:
                        t = epoch_seconds(t)
                except ValueError:
                    try:
                        t = parse_time(text)
                    except ValueError:
                        stats.reject("bad_timestamp", line)
                        continue
                last_text, last_t = text, t
            t = last_t
            patient = row[ip].strip()
            if not patient:
                stats.reject("no_patient", line)
                continue
            param = row[ipar].strip()
            if param not in known:
                param = canonical(param) or param  # "HR", "SpO2 (%)", ...
            raw = row[iv].strip()
            value = nan
            if param in numeric:
                if raw:
                    try:
                        value = float(raw)
                    except ValueError:
                        value = _comma_float(raw) if decimal_comma else nan
                        if value != value:
                            stats.reject("bad_value", line)
                            continue
                    if value - value != 0.0 or value == inf:
                        stats.reject("bad_value", line)
                        continue
            elif param in context:
                if not _context_ok(param, raw):
                    stats.reject(f"bad_{param}", line)
                    continue
            else:
                stats.reject("unknown_parameter", line)
                continue
            push(patient, t, param, raw, line, value)
        stats.rows = rows
        for name in order.finish_all():
            p = patients.get(name)
            if p is not None and p.now[0] != -math.inf:
                tick_to(p, p.now[0])
    finally:
        if isinstance(source, Path):
            f.close()
    stats.order = order.stats
    if span[0] <= span[1]:
        stats.first_time, stats.last_time = span[0], span[1]
    stats.anomaly_invokes = sum(p.stage.anomaly_batches for p in patients.values())
    stats.samples = sum(p.stage.samples for p in patients.values())
    records.sort(key=lambda r: (r[0], r[1], r[2]))
    for r in records:
        out(r[3])
    return stats


def shard_of(patient: str, n: int) -> int:
    """The shard of a patient in a replay split over ``n`` processes (stable across runs and machines)."""
    return zlib.crc32(patient.encode()) % n


def merge_stats(parts: list[ReplayStats]) -> ReplayStats:
    """The statistics of a replay run in shards, as one run would have counted them."""
    out = ReplayStats()
    for p in parts:
        for name in ("rows", "samples", "invalid_samples", "context_rows", "alarms_raised", "patients",
                     "anomaly_invokes"):
            setattr(out, name, getattr(out, name) + getattr(p, name))
        for k, v in p.rejected.items():
            out.rejected[k] = out.rejected.get(k, 0) + v
        out.rejected_lines = sorted(out.rejected_lines + p.rejected_lines)[:20]
        if p.first_time is not None and (out.first_time is None or p.first_time < out.first_time):
            out.first_time = p.first_time
        if p.last_time is not None and (out.last_time is None or p.last_time > out.last_time):
            out.last_time = p.last_time
        o, q = out.order, p.order
        o.late += q.late
        o.duplicates += q.duplicates
        o.late_lines = sorted(o.late_lines + q.late_lines)[:20]
        o.max_buffered = max(o.max_buffered, q.max_buffered)
        out.ignored_columns = p.ignored_columns  # the same header in every shard
    return out


def _context_ok(param: str, raw: str) -> bool:
    if not raw:
        return True
    if param == "consciousness":
        return raw.upper() in ("A", "C", "V", "P", "U")
    return raw in ("0", "1")


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
