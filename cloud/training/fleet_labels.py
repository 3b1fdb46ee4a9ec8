"""Labels and episodes from what the ward recorded: clinical events and nurses' verdicts.

Per minute bucket of a patient (1 deteriorating, 0 not, -1 left out of training), in this order of
precedence:

- a clinical event (rapid-response call, ICU transfer, sepsis pathway) at T: 1 from
  ``T - EVENT_POSITIVE_S`` (4 h) to T; -1 from ``T - EVENT_AMBIGUOUS_S`` (8 h) to the positive part (the
  onset is not known) and for ``AFTER_EVENT_S`` (2 h) after T (treated, transferred);
- an alarm the nurse called *actionable* or *already known* at t: 1 from ``t - VERDICT_POSITIVE_S``
  (1 h) to ``t + VERDICT_AFTER_S`` (15 min);
- an alarm called *not actionable* or *artifact* at t: 0 within ``VERDICT_NEGATIVE_S`` (15 min) around t,
  with weight ``HARD_NEGATIVE_WEIGHT`` (3): exactly the false alarms the model should learn to leave out;
- any other time: 0 (no event and no actionable alarm: presumed stable), weight 1.

An *episode* (what sensitivity and lead are counted on) is a clinical event (window
``T - EPISODE_WINDOW_S`` .. T, anchor T) or an actionable verdict more than that window away from any event
of the patient (window ``t - VERDICT_POSITIVE_S`` .. ``t + VERDICT_AFTER_S``, anchor t); overlapping
episodes of a patient are merged.

These windows are fixed here, stated in the retrain's JSON (``labelling``) and docs/learning-loop.md;
they were not tuned on any held-out data.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from cloud.training.fleet_data import FleetData, PatientBuckets

EVENT_POSITIVE_S = 4 * 3600.0
EVENT_AMBIGUOUS_S = 8 * 3600.0
AFTER_EVENT_S = 2 * 3600.0
VERDICT_POSITIVE_S = 3600.0
VERDICT_AFTER_S = 900.0
VERDICT_NEGATIVE_S = 900.0
HARD_NEGATIVE_WEIGHT = 3.0
EPISODE_WINDOW_S = 6 * 3600.0
POSITIVE_VERDICTS = ("actionable", "already_known")
NEGATIVE_VERDICTS = ("not_actionable", "artifact")


@dataclass
class Episode:
    start: float  # epoch s: an alarm from here on counts as detecting it
    anchor: float  # the event (or the actionable alarm): lead is counted back from here
    end: float


@dataclass
class LabelCounts:
    from_feedback: int  # verdicts that became labels (on a patient with data)
    from_events: int  # clinical events that became labels
    positive_buckets: int
    hard_negative_buckets: int


def labelling() -> dict[str, float]:
    return {"event_positive_h": EVENT_POSITIVE_S / 3600, "event_ambiguous_h": EVENT_AMBIGUOUS_S / 3600,
            "after_event_h": AFTER_EVENT_S / 3600, "verdict_positive_min": VERDICT_POSITIVE_S / 60,
            "verdict_after_min": VERDICT_AFTER_S / 60, "verdict_negative_min": VERDICT_NEGATIVE_S / 60,
            "hard_negative_weight": HARD_NEGATIVE_WEIGHT, "episode_window_h": EPISODE_WINDOW_S / 3600}


def apply_labels(fleet: FleetData) -> LabelCounts:
    """Set ``labels`` and ``weights`` of every patient in ``fleet``; count what was used."""
    events = defaultdict(list)
    for e in fleet.events:
        events[e.patient].append(e.t)
    verdicts = defaultdict(list)
    for v in fleet.verdicts:
        verdicts[v.patient].append((v.t, v.verdict))
    n_fb = n_ev = pos = hard = 0
    for pb in fleet.patients:
        end = pb.ends
        y = np.zeros(len(end), np.int8)
        w = np.ones(len(end), np.float32)
        inside = (end >= end[0]) & (end <= end[-1] + 60.0)
        fixed = np.zeros(len(end), bool)  # set by a stronger rule
        for t in events.get(pb.patient, []):
            if not end[0] - 60.0 <= t <= end[-1] + AFTER_EVENT_S:
                continue
            n_ev += 1
            amb = (end >= t - EVENT_AMBIGUOUS_S) & (end <= t + AFTER_EVENT_S)
            y[amb & ~fixed] = -1
            p = (end >= t - EVENT_POSITIVE_S) & (end <= t)
            y[p] = 1
            fixed |= amb
        for t, code in verdicts.get(pb.patient, []):
            if not end[0] - 60.0 <= t <= end[-1] + 60.0:
                continue
            n_fb += 1
            if code in POSITIVE_VERDICTS:
                m = (end >= t - VERDICT_POSITIVE_S) & (end <= t + VERDICT_AFTER_S) & ~fixed
                y[m] = 1
                fixed |= m
            elif code in NEGATIVE_VERDICTS:
                m = (end >= t - VERDICT_NEGATIVE_S) & (end <= t + VERDICT_NEGATIVE_S) & ~fixed & (y == 0)
                w[m] = HARD_NEGATIVE_WEIGHT
                hard += int(m.sum())
        pb.labels, pb.weights = np.where(inside, y, -1).astype(np.int8), w
        pos += int((pb.labels == 1).sum())
    return LabelCounts(n_fb, n_ev, pos, hard)


def episodes(fleet: FleetData, pb: PatientBuckets) -> list[Episode]:
    """The patient's episodes within its data (merged where they overlap)."""
    lo, hi = float(pb.ends[0]) - 60.0, float(pb.ends[-1]) + 60.0
    ev = sorted(e.t for e in fleet.events if e.patient == pb.patient and lo <= e.t <= hi)
    out = [Episode(t - EPISODE_WINDOW_S, t, t) for t in ev]
    for v in fleet.verdicts:
        if v.patient != pb.patient or v.verdict not in POSITIVE_VERDICTS or not lo <= v.t <= hi:
            continue
        if any(abs(v.t - t) <= EPISODE_WINDOW_S for t in ev):
            continue
        out.append(Episode(v.t - VERDICT_POSITIVE_S, v.t, v.t + VERDICT_AFTER_S))
    out.sort(key=lambda e: e.start)
    merged: list[Episode] = []
    for e in out:
        if merged and e.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Episode(last.start, max(last.anchor, e.anchor), max(last.end, e.end))
        else:
            merged.append(e)
    return merged
