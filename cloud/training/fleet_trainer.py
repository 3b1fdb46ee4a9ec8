"""Fit a vitals-anomaly candidate on fleet buckets: a thin adapter over the 1.x training pieces.

``fit_from_buckets(train, val, seed, ...)`` is the call the retrain makes (docs/learning-loop.md;
/work/notes contract with issue 10, whose 2.0 trainer takes its place when it lands). It uses the 1.x
network, export and manifest of cloud/training/vitals_anomaly.py:

- windows of the feature spec from every fleet patient's labelled buckets (positives and hard negatives all,
  other negatives every ``neg_stride``-th), weighted by the labels' weights;
- AUGMENTATION with synthetic scenarios (cloud/training/scenarios.py, ``synthetic`` of them, stated in the
  manifest's ``training_data``): the fleet of a young deployment has few deteriorations, the generator has
  many; ``synthetic=0`` trains on the fleet alone;
- the alarm threshold is chosen on the VALIDATION fleet patients (never the held-out ones) at the alarm
  level: the lowest whose false alarms per patient-day stay under ``target_fa_per_day``.

Needs the ``train`` extra (TensorFlow); imported only by the retrain command.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clinical.features import N_FEATURES, SPEC, WINDOW, windows
from cloud.training.fleet_data import ClinicalEventRow, FleetData, PatientBuckets
from cloud.training.fleet_eval import choose_threshold, evaluate, summary
from cloud.training.scenarios import GeneratorParams
from cloud.training.vitals_anomaly import NAME, build_dataset, build_model, export_tflite
from wire.model_manifest import Manifest, TensorSpec, encode_manifest

MIN_BUCKETS = 10


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict[str, float | int | str | None]


def fleet_windows(patients: list[PatientBuckets], neg_stride: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys, ws = [], [], []
    for pb in patients:
        idx = np.arange(len(pb.ends))
        y, w = pb.labels, pb.weights
        keep = (idx >= MIN_BUCKETS) & (y >= 0) & ((y == 1) | (w > 1.0) | (idx % neg_stride == 0))
        at = idx[keep]
        if len(at):
            xs.append(windows(pb.rows, at))
            ys.append(y[at].astype(np.float32))
            ws.append(w[at].astype(np.float32))
    if not xs:
        return np.zeros((0, WINDOW, N_FEATURES), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def warm_start(model: Any, active_dir: Path) -> str:
    """Start from the active model's weights when its network is the 1.x one (Dense kernels and biases read
    from its .tflite through LiteRT); returns what was done, for the report."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - the train extra has it
        return "cold start (no LiteRT to read the active model)"
    it = Interpreter(model_path=str(active_dir / "model.tflite"))
    it.allocate_tensors()
    consts: dict[tuple[int, ...], np.ndarray] = {}
    for d in it.get_tensor_details():
        if d["dtype"] is not np.float32 or d["name"].startswith("serving_default"):
            continue
        try:
            consts.setdefault(tuple(int(x) for x in d["shape"]), np.array(it.get_tensor(d["index"])))
        except ValueError:  # an activation, not a constant
            continue
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    weights = []
    for layer in dense:
        k_in, k_out = (int(x) for x in layer.kernel.shape)
        kernel, bias = consts.get((k_out, k_in)), consts.get((k_out,))
        if kernel is None or bias is None:
            return f"cold start (the active model's network differs at {layer.name})"
        weights.append((layer, kernel.T, bias))
    for layer, kernel, bias in weights:
        layer.set_weights([kernel, bias])
    return f"warm start from the active model ({active_dir.name})"


def synthetic_fleet(seed: int, count: int, hours: float) -> FleetData:
    """Synthetic scenarios as fleet patients: the spec's rows, the event at the end of each deterioration
    (labelled by the same rules as the fleet's, fleet_labels.apply_labels)."""
    from cloud.training.fleet_labels import apply_labels
    from cloud.training.labels import buckets
    from cloud.training.scenarios import generate

    patients, events = [], []
    for i in range(count):
        sc = generate(seed, i, GeneratorParams(hours=hours))
        ends, rows = buckets(sc)
        name = f"synthetic-{seed}-{i}"
        patients.append(PatientBuckets(name, ends, rows))
        if sc.event_s is not None:
            events.append(ClinicalEventRow(name, sc.start + sc.event_s, "synthetic"))
    out = FleetData(patients, [], events)
    apply_labels(out)
    return out


def fit_from_buckets(
    train: list[PatientBuckets], val: list[PatientBuckets], seed: int, *, fleet: FleetData, out_dir: Path,
    version: str, synthetic: int = 40, synthetic_hours: float = 12.0, epochs: int = 6,
    target_fa_per_day: float = 1.0, log: Callable[[str], None] = print,
    transform: Callable[[np.ndarray], np.ndarray] | None = None, active_dir: Path | None = None,
    learning_rate: float = 1e-4, active: tuple[Callable[[np.ndarray], np.ndarray], float, int, str] | None = None,
) -> TrainResult:
    """Train, pick the threshold on ``val``, export ``out_dir/version`` (unsigned: signing is the gate's).

    With ``active_dir`` the network starts from the active model's weights (its synthetic training is then
    the pre-training) and is fine-tuned at ``learning_rate``; otherwise from scratch. With ``active`` (its
    scorer, threshold, min buckets) the threshold's false-alarm budget is the larger of ``target_fa_per_day``
    and the active model's own rate on the same validation patients: the candidate may alarm as often as the
    model it replaces, and spends that on sensitivity.

    ``transform`` (tests only) rewrites the training labels before fitting: a deliberately worse candidate."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    x, y, w = fleet_windows(train)
    fleet_n = len(y)
    if synthetic:
        syn = build_dataset(seed, synthetic, GeneratorParams(hours=synthetic_hours))
        x, y = np.concatenate([x, syn.x]), np.concatenate([y, syn.y])
        w = np.concatenate([w, np.ones(len(syn.y), np.float32)])
    if transform is not None:
        y = transform(y)
    pos = float(y.mean()) if len(y) else 0.0
    log(f"training windows {len(y)} ({fleet_n} fleet, {len(y) - fleet_n} synthetic), positive {pos:.3f}")
    model = build_model(seed)
    start = "cold start"
    if active_dir is not None:
        start = warm_start(model, active_dir)
        if start.startswith("warm"):
            import tensorflow as tf

            model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    log(start)
    cw = np.where(y > 0.5, 0.5 / max(pos, 1e-6), 0.5 / max(1.0 - pos, 1e-6)).astype(np.float32)
    model.fit(x, y, sample_weight=w * cw, epochs=epochs, batch_size=256, verbose=0, shuffle=True)

    def score(win: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(win, batch_size=2048, verbose=0)[:, 0]) if len(win) else np.zeros(0)

    val_fleet, val_set = fleet, val
    if synthetic:  # a young fleet's validation patients are too few to set a threshold on alone
        syn_val = synthetic_fleet(seed + 500, max(20, synthetic // 2), synthetic_hours)
        val_fleet = FleetData(fleet.patients + syn_val.patients, fleet.verdicts, fleet.events + syn_val.events)
        val_set = val + syn_val.patients
    target = target_fa_per_day
    if active is not None:  # the active model's false-alarm rate on the same validation patients is the budget
        a_score, a_thr, a_min, a_kind = active
        a_fig = summary(evaluate(a_score, a_thr, a_min, val_fleet, val_set, a_kind))
        if a_fig["false_alarms_per_patient_day"] is not None:
            target = max(target, float(a_fig["false_alarms_per_patient_day"]))
        log(f"active model on the validation patients: {a_fig}; false-alarm budget {target:.2f}/patient-day")
    thr, val_fig = choose_threshold(val_fleet, val_set, score, MIN_BUCKETS, target)
    log(f"threshold {thr:.2f} on {len(val)} validation patients (+ {len(val_set) - len(val)} synthetic): {val_fig}")
    model_dir = out_dir / version
    model_dir.mkdir(parents=True, exist_ok=True)
    export_tflite(model, model_dir / "model.tflite")
    metrics: dict[str, float | int | str | None] = {
        "threshold": round(thr, 6), "min_buckets": MIN_BUCKETS, "bucket_s": 60, "window": WINDOW,
        "val_alarm_sensitivity": val_fig.get("sensitivity"),
        "val_false_alarms_per_patient_day": val_fig.get("false_alarms_per_patient_day"),
        "val_fa_per_day_target": round(target, 3), "train_patients": len(train), "val_patients": len(val),
        "train_windows_fleet": fleet_n, "train_windows_synthetic": len(y) - fleet_n, "train_seed": seed,
        "start": start,
    }
    manifest = Manifest(
        name=NAME, version=version, sha256="",
        inputs=[TensorSpec("windows", [-1, WINDOW, N_FEATURES], "float32")],
        outputs=[TensorSpec("deterioration", [-1, 1], "float32")],
        metrics=metrics, features=SPEC.to_manifest(),
        training_data=(f"FLEET: per-minute summaries of {len(train)} pseudonymous patients from InfluxDB, labels from "
                       f"nurse verdicts and recorded clinical events; threshold on {len(val)} other fleet patients"
                       + (f"; AUGMENTED with {synthetic} synthetic scenarios (cloud/training/scenarios.py, seed "
                          f"{seed})" if synthetic else "; no synthetic data")),
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        notes="retrained by `pulsegate model retrain vitals-anomaly` (1.x network through the fleet adapter)",
    )
    (model_dir / "manifest.json").write_bytes(encode_manifest(manifest))
    return TrainResult(model_dir, metrics)


def describe(result: TrainResult) -> dict[str, Any]:
    return {"model_dir": str(result.model_dir), **result.metrics}
