"""``pulsegate model retrain vitals-anomaly``: fleet data in, a gated (and only then signed) candidate out.

1. read the last ``since`` of per-minute summaries, verdicts and clinical events from InfluxDB
   (cloud/training/fleet_data.py) and label every patient's buckets (fleet_labels.py);
2. split BY PATIENT AND BY TIME: patients ordered by their first bucket, the latest ``heldout_fraction``
   are held out; every other patient's buckets after the first held-out patient began are cut, so no
   training data comes from the held-out period and no patient is on both sides; the latest fifth of
   the training patients choose the threshold (validation);
3. refuse with a clear :class:`TooLittleData` (no model) below the stated minimums;
4. train (fleet_trainer.fit_from_buckets), then score the candidate AND the active model, each through
   LiteRT on its .tflite, on the same held-out patients (fleet_eval.py), and gate (gate.py);
5. a passed gate signs the candidate (with a key); a failed one signs nothing and the folder is renamed
   ``{version}.refused`` beside its report.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from clinical.model_input import inputs_for
from cloud.training.fleet_data import FleetData, PatientBuckets
from cloud.training.fleet_eval import evaluate, litert_scorer, summary
from cloud.training.fleet_labels import apply_labels, episodes, labelling
from cloud.training.gate import GateConfig, gate
from wire.model_manifest import load_private_key, sign_model_dir, version_tuple

MIN_HOURS = 2.0  # a patient with less data is left out (counted)


class TooLittleData(Exception):
    """Not enough fleet data to train and judge a candidate; the message says what is missing."""


MIN_FA_BUDGET = 0.05  # false alarms per patient-day: a threshold "above every stable score" is no choice


@dataclass
class RetrainOptions:
    out_dir: Path
    active_dir: Path
    key_path: Path | None = None
    version: str | None = None
    seed: int = 1
    synthetic: int = 40
    epochs: int = 6
    cold_start: bool = False  # train from scratch instead of fine-tuning the active model
    fine_tune_lr: float = 3e-4  # Adam's step when fine-tuning a warm-started 2.x network
    freeze_features: bool = True  # warm start: fine-tune the dense head, keep the convolutions' features
    target_fa_per_day: float = 0.5
    heldout_fraction: float = 0.3
    min_train_patients: int = 4
    min_heldout_patients: int = 3
    min_heldout_episodes: int = 2
    min_train_positive: int = 30
    gate: GateConfig = field(default_factory=GateConfig)


@dataclass
class Split:
    train: list[PatientBuckets]
    val: list[PatientBuckets]
    heldout: list[PatientBuckets]
    cutoff: float
    dropped: int


def _cut(pb: PatientBuckets, before: float) -> PatientBuckets:
    keep = pb.ends <= before
    return replace(pb, ends=pb.ends[keep], rows=pb.rows[keep], labels=pb.labels[keep], weights=pb.weights[keep])


def split(patients: list[PatientBuckets], heldout_fraction: float) -> Split:
    usable = sorted((p for p in patients if p.hours >= MIN_HOURS), key=lambda p: p.start)
    dropped = len(patients) - len(usable)
    if len(usable) < 2:
        return Split([], [], usable, math.inf, dropped)
    n_held = max(1, math.ceil(heldout_fraction * len(usable)))
    heldout = usable[-n_held:]
    cutoff = min(p.start for p in heldout)
    pool = [c for p in usable[:-n_held] if (c := _cut(p, cutoff)).hours >= MIN_HOURS]
    dropped += len(usable) - n_held - len(pool)
    n_val = max(1, len(pool) // 5) if len(pool) >= 5 else 0
    return Split(pool[:len(pool) - n_val], pool[len(pool) - n_val:], heldout, cutoff, dropped)


def next_version(active: str, out_dir: Path) -> str:
    taken = [version_tuple(active)]
    for d in out_dir.glob("*"):
        name = d.name.removesuffix(".refused")
        try:
            taken.append(version_tuple(name))
        except ValueError:
            continue
    top = max(taken)
    major, minor = (*top, 0, 0)[:2]
    return f"{major}.{minor + 1}.0"


def check_enough(s: Split, fleet: FleetData, o: RetrainOptions) -> None:
    held_eps = sum(len(episodes(fleet, p)) for p in s.heldout)
    pos = sum(int((p.labels == 1).sum()) for p in s.train)
    missing = []
    if len(s.train) < o.min_train_patients:
        missing.append(f"{len(s.train)} training patients (need {o.min_train_patients})")
    if len(s.heldout) < o.min_heldout_patients:
        missing.append(f"{len(s.heldout)} held-out patients (need {o.min_heldout_patients})")
    if held_eps < o.min_heldout_episodes:
        missing.append(f"{held_eps} held-out episodes (need {o.min_heldout_episodes})")
    if pos < o.min_train_positive:
        missing.append(f"{pos} positive training minutes (need {o.min_train_positive})")
    if missing:
        raise TooLittleData("too little fleet data to retrain: " + "; ".join(missing) +
                            f" (patients with >= {MIN_HOURS:g} h of data: {len(s.train) + len(s.val) + len(s.heldout)}"
                            f", left out: {s.dropped}). No model was trained.")


def fit_v2(train: list[PatientBuckets], val: list[PatientBuckets], o: RetrainOptions, fleet: FleetData,
           version: str, log: Callable[[str], None],
           transform: Callable[[np.ndarray], np.ndarray] | None = None,
           active: tuple[Callable[[np.ndarray], np.ndarray], float, int, str] | None = None) -> Any:
    """The 2.x trainer (cloud/training/vitals_anomaly2.py) on the fleet's buckets, written unsigned (signing is
    the gate's).

    Unless ``cold_start``: a WARM START from the active model's weights (cloud/training/anomaly2_warm.py; its
    synthetic training is the pre-training), fine-tuned at ``fine_tune_lr`` on the fleet's windows, AUGMENTED
    with ``synthetic`` generated ward patients (cloud/training/patient_buckets.py) so that the fine-tuning does
    not forget what the pre-training taught on a young fleet's few deteriorations. With ``active`` (its LiteRT
    scorer, threshold, min buckets, kind) the threshold's false-alarm budget is the active model's own rate
    on the same validation patients (at least ``MIN_FA_BUDGET``): the candidate may alarm as often as the
    model it would replace, and spends that on sensitivity. (Before, the budget was at least
    ``target_fa_per_day``, 0.5: against an active model with no false alarm the candidate was tuned to raise up
    to 0.5 a patient-day more, which the gate then refused, rightly.) Without an active model the budget is
    ``target_fa_per_day``."""
    from cloud.training.anomaly2_warm import WarmStartError, load_active_weights
    from cloud.training.fleet_trainer import TrainResult
    from cloud.training.patient_buckets import ward_patient_buckets
    from cloud.training.vitals_anomaly2 import MIN_BUCKETS, alarm_metrics, write_model_dir
    from cloud.training.vitals_anomaly2 import fit_from_buckets as fit2
    from cloud.training.ward_scenarios import WardParams

    data = list(train)
    n_val_fleet = len(val)
    if o.synthetic:
        data += ward_patient_buckets(o.seed, o.synthetic, WardParams())
        # a young fleet's few validation patients cannot set a calibration and a threshold alone: generated
        # ward patients of another seed join them (never the held-out fleet patients)
        val = list(val) + ward_patient_buckets(o.seed + 1000, max(20, o.synthetic // 2), WardParams())
    if transform is not None:
        data = [replace(p, labels=transform(p.labels).astype(np.int8)) for p in data]
    target = o.target_fa_per_day
    if active is not None:
        a_score, a_thr, _, a_kind = active
        scores = [a_score(inputs_for(a_kind, p.rows, np.arange(MIN_BUCKETS, len(p.ends)))) for p in val]
        _, a_fa = alarm_metrics(val, [np.asarray(s, np.float64) for s in scores], a_thr)
        target = max(MIN_FA_BUDGET, round(a_fa, 3))
        log(f"active model on the {len(val)} validation patients: {a_fa:.2f} false alarms/patient-day; "
            f"false-alarm budget {target:.2f}")
    init = None
    start_note = "cold start (2.x trainer)"
    if not o.cold_start:
        def init(model: Any) -> dict[str, Any]:
            try:
                done = load_active_weights(model, o.active_dir)
            except WarmStartError as exc:
                log(f"no warm start: {exc}")
                return {"start": f"cold start ({exc})"}
            if o.freeze_features:  # fine-tune the head only: the convolutions keep the pre-training's features
                for layer in model.layers:
                    if layer.__class__.__name__ == "Conv1D":
                        layer.trainable = False
                done["fine_tuned"] = "dense head (convolutions frozen)"
            else:
                done["fine_tuned"] = "all layers"
            return done
    res = fit2(data, val, o.seed, epochs=o.epochs, target_fa_per_day=target, log=log, init=init,
               learning_rate=None if o.cold_start else o.fine_tune_lr)
    start_note = str(res.metrics.get("start", start_note))
    res.metrics = {**res.metrics, "start": start_note, "train_patients_fleet": len(train),
                   "val_fa_per_day_target": target}
    pre = (f"pre-trained: the active model {o.active_dir.name}'s own training (its weights), fine-tuned; "
           if start_note.startswith("warm") else "")
    d = write_model_dir(res, o.out_dir, version, training_data=(
        f"FLEET: {pre}per-minute summaries of {len(train)} pseudonymous patients from InfluxDB, labels from nurse "
        f"verdicts and clinical events; threshold and calibration on {n_val_fleet} other fleet patients"
        + (f" and {len(val) - n_val_fleet} generated ward patients (seed {o.seed + 1000})" if o.synthetic else "")
        + (f"; AUGMENTED with {o.synthetic} generated ward patients (seed {o.seed})" if o.synthetic else "")))
    return TrainResult(d, res.metrics)


def _iso(t: float) -> str | None:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if math.isfinite(t) else None


def retrain(fleet: FleetData, o: RetrainOptions, log: Callable[[str], None] = print,
            transform: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
    """The whole retrain on already-loaded fleet data; returns the report (TooLittleData before any training)."""
    from cloud.training.fleet_trainer import fit_from_buckets

    t0 = time.monotonic()
    counts = apply_labels(fleet)
    s = split(fleet.patients, o.heldout_fraction)
    check_enough(s, fleet, o)
    a_score, a_thr, a_min, a_version, a_kind = litert_scorer(o.active_dir)
    version = o.version or next_version(a_version, o.out_dir)
    if version_tuple(version) <= version_tuple(a_version):
        raise ValueError(f"candidate version {version} must be newer than the active {a_version}")
    if a_kind == "window":  # a 1.x fleet: fine-tune its network (the thin adapter)
        result = fit_from_buckets(s.train, s.val or s.train, o.seed, fleet=fleet, out_dir=o.out_dir,
                                  version=version, synthetic=o.synthetic, epochs=o.epochs,
                                  target_fa_per_day=o.target_fa_per_day, log=log, transform=transform,
                                  active_dir=None if o.cold_start else o.active_dir,
                                  active=(a_score, a_thr, a_min, a_kind))
    else:  # 2.x: issue 10's trainer on the same buckets
        result = fit_v2(s.train, s.val or s.train, o, fleet, version, log, transform,
                        active=(a_score, a_thr, a_min, a_kind))
    c_score, c_thr, c_min, _, c_kind = litert_scorer(result.model_dir)
    cand = evaluate(c_score, c_thr, c_min, fleet, s.heldout, c_kind)
    act = evaluate(a_score, a_thr, a_min, fleet, s.heldout, a_kind)
    verdict = gate(cand, act, o.gate)
    report: dict[str, Any] = {
        "model": "vitals-anomaly",
        "train_patients": len(s.train), "val_patients": len(s.val), "heldout_patients": len(s.heldout),
        "left_out_patients": s.dropped,
        "split": {"by": "patient and time", "heldout_from": _iso(s.cutoff),
                  "train_data_until": _iso(s.cutoff), "no_patient_in_both": True},
        "labels_from_feedback": counts.from_feedback, "labels_from_events": counts.from_events,
        "positive_minutes": counts.positive_buckets, "hard_negative_minutes": counts.hard_negative_buckets,
        "labelling": labelling(),
        "synthetic": {"scenarios": o.synthetic, "role": "augmentation of the fleet training set" if o.synthetic
                      else "none", "pre_training": "the active model's own (synthetic) training, fine-tuned"
                      if str(result.metrics.get("start", "")).startswith("warm") else "none (cold start)"},
        "candidate": {"version": version, "threshold": c_thr, **summary(cand)},
        "active": {"version": a_version, "threshold": a_thr, "model_dir": str(o.active_dir), **summary(act)},
        "gate": verdict,
    }
    signed = False
    model_dir = result.model_dir
    if verdict["pass"] and o.key_path is not None:
        sign_model_dir(model_dir, load_private_key(o.key_path))
        signed = True
    elif not verdict["pass"]:
        refused = model_dir.with_name(model_dir.name + ".refused")
        if refused.exists():
            import shutil

            shutil.rmtree(refused)
        model_dir = model_dir.rename(refused)
    report.update({"signed": signed, "model_dir": str(model_dir), "seconds": round(time.monotonic() - t0, 1)})
    (model_dir / "retrain.json").write_text(json.dumps(report, indent=1) + "\n")
    return report
