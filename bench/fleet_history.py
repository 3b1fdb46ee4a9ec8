"""Emulated fleet history for the learning loop: what gateways and nurses would have sent, as wire messages.

Each emulated patient is a synthetic scenario (cloud/training/scenarios.py) placed in the recent past on a
gateway's bed: its per-minute ``Summary`` items (count, min, max, mean, last of the valid samples, as the
gateway's Summarizer makes them), bedside threshold ``Alarm`` messages on the minute means, an emulated
nurse's ``Verdict`` on most alarms (actionable or already known when the alarm fell in the deterioration,
not actionable or artifact otherwise) and a ``ClinicalEvent`` at the end of each deterioration (sepsis
pathway, rapid-response call, ICU transfer by kind). Patients are pseudonyms made with a gateway key, as
on a gateway. Used by the retrain tests and ``pulsegate demo --learning-loop``; the messages go into
InfluxDB through the ingest's own point mapping (:func:`write_influx`) or through a real uplink.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from cloud.influx import InfluxWriter
from cloud.points import to_lines
from cloud.training.scenarios import GeneratorParams, generate
from edge.pseudonym import Pseudonymizer
from wire.messages import VERSION, Alarm, ClinicalEvent, Message, Summary, SummaryItem, Verdict

EVENT_CODE = {"sepsis": "sepsis_pathway", "resp_failure": "rapid_response", "haemorrhage": "icu_transfer"}
# minute-mean bedside limits of the emulated alarms: (param, "low"/"high", limit, condition)
LIMITS = (("spo2", "low", 90.0, "spo2_low"), ("heart_rate", "high", 125.0, "heart_rate_high"),
          ("resp_rate", "high", 24.0, "resp_rate_high"), ("nibp_sys", "low", 95.0, "nibp_sys_low"),
          ("temperature", "high", 38.5, "temperature_high"))
REFRACTORY_MIN = 30


@dataclass
class HistoryOptions:
    gateways: int = 3
    patients_per_gateway: int = 8
    hours: float = 8.0
    stagger_h: float = 1.5  # one patient's start to the next (all patients end before ``now``)
    seed: int = 7
    verdict_rate: float = 0.8
    deteriorating_fraction: float = 0.5
    dt: float = 2.0  # scenario sample period (s)


@dataclass
class History:
    messages: list[tuple[str, str, Message]]  # (gateway, stream, message)
    patients: int
    deteriorating: int
    alarms: int
    verdicts: int
    events: int


def _minutes(start: float, t: np.ndarray, v: np.ndarray, q: np.ndarray) -> dict[int, tuple[int, float, float,
                                                                                          float, float]]:
    ok = (q == 0) & ~np.isnan(v)
    k = np.floor((start + t[ok]) / 60.0).astype(np.int64)
    vals = v[ok]
    out: dict[int, tuple[int, float, float, float, float]] = {}
    if not len(k):
        return out
    cut = np.flatnonzero(np.diff(k)) + 1
    for seg_k, seg in zip(np.split(k, cut), np.split(vals, cut), strict=True):
        out[int(seg_k[0])] = (len(seg), float(seg.min()), float(seg.max()), float(seg.mean()), float(seg[-1]))
    return out


def fleet_history(o: HistoryOptions, now: float, key: bytes = b"learning-loop-demo-key!") -> History:
    rng = np.random.default_rng(o.seed)
    gp = replace(GeneratorParams(hours=o.hours, dt=o.dt), deteriorating_fraction=o.deteriorating_fraction)
    pseudo = Pseudonymizer(key)
    n = o.gateways * o.patients_per_gateway
    end_all = math.floor(now / 60.0) * 60.0 - 120.0
    per_gw_minute: dict[tuple[str, int], list[SummaryItem]] = defaultdict(list)
    msgs: list[tuple[str, str, Message]] = []
    n_alarm = n_verdict = n_event = n_det = 0
    for i in range(n):
        gw = f"gw-{i % o.gateways + 1:02d}"
        bed = f"bed-{i // o.gateways + 1:02d}"
        sc = generate(o.seed, i, gp)
        start = end_all - o.hours * 3600.0 - (n - 1 - i) * o.stagger_h * 3600.0
        patient = pseudo.pseudonym(f"{gw}/{bed}/{i}")
        minutes = {p: _minutes(start, sc.t, sc.values[p], sc.quality[p]) for p in sc.values}
        for p, per in minutes.items():
            for k, (c, lo, hi, mean, last) in per.items():
                per_gw_minute[(gw, k)].append(SummaryItem(bed, patient, p, int(k * 60 * 1e9), c, lo, hi, mean, last))
        onset = None if sc.onset_s is None else start + sc.onset_s
        event = None if sc.event_s is None else start + sc.event_s
        n_det += onset is not None
        quiet_until: dict[str, int] = {}
        for p, d, limit, cond in LIMITS:
            for k, (_, _, _, mean, _) in sorted(minutes.get(p, {}).items()):
                beyond = mean < limit if d == "low" else mean > limit
                if not beyond or k < quiet_until.get(cond, -1):
                    continue
                quiet_until[cond] = k + REFRACTORY_MIN
                t = k * 60.0 + 30.0
                alarm_id = f"{gw}-{i}-{cond}-{k}"
                n_alarm += 1
                msgs.append((gw, "alarms", Alarm(v=VERSION, gw=gw, seq=0, alarm_id=alarm_id, bed=bed, patient=patient,
                                                 t=int(t * 1e9), state="raised", priority="medium",
                                                 kind="physiological", source="threshold", condition=cond,
                                                 value=round(mean, 1), param=p)))
                if rng.random() >= o.verdict_rate:
                    continue
                real = onset is not None and event is not None and onset <= t <= event + 1800.0
                code = ("actionable" if rng.random() < 0.8 else "already_known") if real else \
                    ("not_actionable" if rng.random() < 0.6 else "artifact")
                n_verdict += 1
                msgs.append((gw, "events", Verdict(v=VERSION, gw=gw, seq=0, alarm_id=alarm_id, bed=bed,
                                                   patient=patient, t=int(t * 1e9), at=int((t + 120) * 1e9),
                                                   verdict=code, source="threshold", condition=cond,  # type: ignore[arg-type]
                                                   priority="medium", by="nurse-emulated")))
        if event is not None:
            n_event += 1
            msgs.append((gw, "events", ClinicalEvent(v=VERSION, gw=gw, seq=0, bed=bed, patient=patient,
                                                     t=int(event * 1e9), code=EVENT_CODE[sc.kind],  # type: ignore[arg-type]
                                                     recorded=int((event + 300) * 1e9), by="nurse-emulated")))
    for (gw, _k), items in sorted(per_gw_minute.items(), key=lambda kv: kv[0][1]):
        msgs.append((gw, "summaries", Summary(v=VERSION, gw=gw, seq=0, interval_s=60.0, items=items)))
    return History(msgs, n, n_det, n_alarm, n_verdict, n_event)


async def write_influx(influx: InfluxWriter, history: History, site: str = "ward-demo", batch: int = 5000) -> int:
    """Write every message through the ingest's point mapping; returns the points written."""
    await influx.create_database()
    lines: list[str] = []
    seq: dict[tuple[str, str], int] = defaultdict(int)
    for gw, stream, msg in history.messages:
        seq[(gw, stream)] += 1
        msg.seq = seq[(gw, stream)]
        lines.extend(to_lines(msg, site, stream))
    for i in range(0, len(lines), batch):
        r = await influx.write(lines[i:i + batch])
        if not r.ok:
            raise RuntimeError(f"InfluxDB refused a batch: {r.status} {r.body[:200]}")
    return len(lines)
