"""vitals-anomaly 2.x: a temporal model over the minute buckets and the patient's own baseline, calibrated.

Input: the gateway's own input builder (clinical/model_input.py, kind ``baseline``): the last 60 minute
buckets (5 normalised vitals + 5 availability masks) and each vital's deviation from the patient's own
baseline, (60, 15). Architecture: three causal 1-D convolutions with dilations 1, 3, 9 (receptive
fields of about 5, 17 and 53 minutes: several horizons), then the last step and the average over the
hour -> dense 16 -> one logit. Trained with class-weighted binary cross-entropy; calibrated by Platt
scaling (a logistic fit of the labels on the logit) on the validation patients and the calibration
folded into the last layer, so the .tflite outputs a calibrated probability; the alarm threshold is
the lowest whose simulated gateway alarms (score held ``delay_buckets``, hysteresis 0.8, clear after
``clear_buckets``) stay under ``target_fa_per_day`` false alarms per patient-day of stable time on
the validation patients.

:func:`fit_from_buckets` takes :class:`~cloud.training.patient_buckets.PatientBuckets` from any source
(the ward generator, the fleet's per-minute summaries); :func:`write_model_dir` exports a model
folder (model.tflite, manifest.json with the feature spec, optionally signed). Needs the ``train``
extra (tensorflow-cpu), imported inside the functions.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from clinical.features import SPEC, WINDOW
from clinical.model_input import inputs_for, n_channels
from cloud.training.patient_buckets import PatientBuckets, check_buckets
from cloud.training.vitals_anomaly import simulate_alarms
from wire.model_manifest import Manifest, TensorSpec, encode_manifest, load_private_key, sign_model_dir

NAME = "vitals-anomaly"
KIND = "baseline"
MIN_BUCKETS = 10  # the gateway starts scoring a bed after 10 buckets of history
PRE_BUCKETS = 10  # an alarm up to 10 min before the first positive bucket is not false


@dataclass
class TrainResult:
    model: Any  # keras model with the calibration folded in: calibrated probability
    threshold: float
    platt: tuple[float, float]  # p = sigmoid(a * logit + b)
    metrics: dict[str, float | int | str | None] = field(default_factory=dict)


def windows_of(patients: list[PatientBuckets], neg_stride: int = 1, start: int = MIN_BUCKETS,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model inputs, labels and weights (the patients' own, else 1) of every labelled bucket (negatives
    every ``neg_stride``-th)."""
    xs, ys, ws = [], [], []
    for pb in patients:
        check_buckets(pb)
        idx = np.arange(len(pb.ends))
        y = pb.labels
        keep = (idx >= start) & (((y == 0) & (idx % neg_stride == 0)) | (y == 1))
        at = idx[keep]
        xs.append(inputs_for(KIND, pb.rows, at))
        ys.append(y[at].astype(np.float32))
        ws.append(pb.weights[at].astype(np.float32) if len(pb.weights) else np.ones(len(at), np.float32))
    ch = n_channels(KIND)
    x = np.concatenate(xs) if xs else np.zeros((0, WINDOW, ch), np.float32)
    empty = np.zeros(0, np.float32)
    return x, (np.concatenate(ys) if ys else empty), (np.concatenate(ws) if ws else empty)


def build_model(seed: int, width: int = 16) -> Any:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input(shape=(WINDOW, n_channels(KIND)), name="inputs")
    x = inp
    for d in (1, 3, 9):
        x = tf.keras.layers.Conv1D(width, 5, dilation_rate=d, padding="causal", activation="relu")(x)
    last = tf.keras.layers.Flatten()(tf.keras.layers.Cropping1D((WINDOW - 1, 0))(x))
    avg = tf.keras.layers.GlobalAveragePooling1D()(x)
    h = tf.keras.layers.Concatenate()([last, avg])
    h = tf.keras.layers.Dense(16, activation="relu", name="hidden")(h)
    h = tf.keras.layers.Dropout(0.2)(h)
    logit = tf.keras.layers.Dense(1, name="logit")(h)
    model = tf.keras.Model(inp, logit)
    model.compile(optimizer=tf.keras.optimizers.Adam(2e-3),
                  loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def platt(logits: np.ndarray, y: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """Fit p = sigmoid(a z + b) to labels y: Newton's method with a backtracking line search on the
    (numerically stable) log loss, plus a small L2 term on ``a`` that keeps it finite if z separates y."""
    z = np.asarray(logits, np.float64)
    t = np.asarray(y, np.float64)
    n = max(len(z), 1)

    def loss(a: float, b: float) -> float:
        s = a * z + b
        return float(np.mean(np.logaddexp(0.0, s) - t * s) + 1e-4 * a * a)

    a, b = 1.0, 0.0
    cur = loss(a, b)
    for _ in range(iters):
        s = a * z + b
        p = 0.5 * (1.0 + np.tanh(0.5 * s))  # sigmoid without overflow
        g = np.array([np.sum((p - t) * z) / n + 2e-4 * a, np.sum(p - t) / n])
        w = p * (1 - p)
        hess = np.array([[np.sum(w * z * z) / n + 2e-4, np.sum(w * z) / n], [np.sum(w * z) / n, np.sum(w) / n + 1e-9]])
        try:
            step = np.linalg.solve(hess, g)
        except np.linalg.LinAlgError:
            step = g
        lr = 1.0
        while lr > 1e-6:
            na, nb = a - lr * float(step[0]), b - lr * float(step[1])
            new = loss(na, nb)
            if new <= cur:
                break
            lr *= 0.5
        else:
            break
        done = cur - new < 1e-12
        a, b, cur = na, nb, new
        if done:
            break
    return a, b


def calibrated_model(model: Any, a: float, b: float) -> Any:
    """The same network whose output is sigmoid(a * logit + b)."""
    import tensorflow as tf

    w, c = model.get_layer("logit").get_weights()
    hidden = model.get_layer("hidden").output
    out_layer = tf.keras.layers.Dense(1, activation="sigmoid", name="deterioration")
    out = out_layer(hidden)
    out_layer.set_weights([w * a, c * a + b])
    return tf.keras.Model(model.input, out)


def alarm_metrics(patients: list[PatientBuckets], scores: list[np.ndarray], thr: float,
                  delay_buckets: int = 2, clear_buckets: int = 10) -> tuple[float | None, float]:
    """(sensitivity, false alarms per patient-day of stable time) of the simulated gateway alarm at ``thr``.

    ``scores[i]`` holds one score per bucket of patient i from MIN_BUCKETS on. Stable time: label-0
    buckets more than PRE_BUCKETS before the next positive one; detected: an alarm from PRE_BUCKETS
    before the first positive bucket to the last one.
    """
    det = n_det = fa = 0
    stable_min = 0.0
    for pb, s in zip(patients, scores, strict=True):
        y = pb.labels[MIN_BUCKETS:]
        pos = np.flatnonzero(y == 1)
        first = int(pos[0]) if len(pos) else len(y)
        stable = (y == 0) & (np.arange(len(y)) < first - PRE_BUCKETS)
        stable_min += float(stable.sum())
        raised = simulate_alarms(s, thr, delay_buckets, clear_buckets)
        fa += sum(1 for k in raised if stable[k])
        if len(pos):
            n_det += 1
            det += any(first - PRE_BUCKETS <= k <= int(pos[-1]) for k in raised)
    return (det / n_det if n_det else None), fa / max(stable_min / 1440.0, 1e-9)


def choose_threshold(patients: list[PatientBuckets], scores: list[np.ndarray], target_fa_per_day: float,
                     ) -> tuple[float, float | None, float]:
    for thr in np.arange(0.05, 0.995, 0.01):
        sens, fa = alarm_metrics(patients, scores, float(thr))
        if fa <= target_fa_per_day:
            return float(thr), sens, fa
    return (0.99, *alarm_metrics(patients, scores, 0.99))


def score_patients(model: Any, patients: list[PatientBuckets]) -> list[np.ndarray]:
    """One score per bucket from MIN_BUCKETS on, per patient (what the gateway scores each minute)."""
    out = []
    for pb in patients:
        at = np.arange(MIN_BUCKETS, len(pb.ends))
        x = inputs_for(KIND, pb.rows, at)
        out.append(model.predict(x, batch_size=4096, verbose=0)[:, 0] if len(x) else np.zeros(0, np.float32))
    return out


def fit_from_buckets(train: list[PatientBuckets], val: list[PatientBuckets], seed: int = 1, *, epochs: int = 6,
                     target_fa_per_day: float = 0.5, neg_stride: int = 3, width: int = 16,
                     threads: int = 2, log: Any = print, init: Any = None,
                     learning_rate: float | None = None) -> TrainResult:
    """Train, calibrate (Platt, on ``val``) and choose the alarm threshold (on ``val``, alarm level).

    ``init(model) -> dict`` (a warm start, cloud/training/anomaly2_warm.py) sets the new network's weights
    before training and returns what it did (into the metrics); ``learning_rate`` replaces Adam's 2e-3
    (a fine-tuning takes smaller steps)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:  # only before TensorFlow's first op in this process (a second training in it keeps the first's)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    x, y, w = windows_of(train, neg_stride)
    xv, yv, _ = windows_of(val, 1)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("training buckets need both stable (0) and deteriorating (1) labels")
    pos = float(y.mean())
    log(f"training windows {len(y)} (positive {pos:.3f}) from {len(train)} patients; "
        f"validation windows {len(yv)} from {len(val)} patients")
    model = build_model(seed, width)
    started: dict[str, Any] = {"start": "cold start"}
    if init is not None:
        started = dict(init(model))
        log(f"{started['start']}")
    if learning_rate is not None:
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate),
                      loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
    sw = w * np.where(y == 1, 0.5 / max(1e-6, pos), 0.5 / max(1e-6, 1 - pos)).astype(np.float32)  # class balance
    model.fit(x, y, sample_weight=sw, epochs=epochs, batch_size=256, verbose=0, shuffle=True)
    zv = model.predict(xv, batch_size=4096, verbose=0)[:, 0] if len(xv) else np.zeros(0)
    if len(yv) and yv.min() != yv.max():
        a, b = platt(zv, yv)
    else:
        a, b = 1.0, 0.0
    cal = calibrated_model(model, a, b)
    pv = 0.5 * (1.0 + np.tanh(0.5 * (a * zv + b)))
    auc = _auc(zv, yv)  # on the logit: the calibration is monotone, and saturated probabilities would tie
    brier = float(np.mean((pv - yv) ** 2)) if len(yv) else None
    thr, sens, fa = choose_threshold(val, score_patients(cal, val), target_fa_per_day)
    log(f"validation: window AUC {auc}, Brier {brier}; Platt a={a:.3f} b={b:.3f}; alarm threshold {thr:.2f}: "
        f"sensitivity {sens}, false alarms/patient-day {fa:.2f}")
    metrics: dict[str, float | int | str | None] = {
        "threshold": round(thr, 4), "min_buckets": MIN_BUCKETS, "bucket_s": int(SPEC.bucket_s), "window": WINDOW,
        "input": KIND, "calibration": "platt", "platt_a": round(a, 5), "platt_b": round(b, 5),
        "val_auc_window": auc, "val_brier": None if brier is None else round(brier, 4),
        "val_alarm_sensitivity": None if sens is None else round(sens, 4),
        "val_false_alarms_per_patient_day": round(fa, 3), "val_fa_per_day_target": target_fa_per_day,
        "train_patients": len(train), "val_patients": len(val), "train_windows": len(y), "epochs": epochs,
        "seed": seed, **started,
    }
    return TrainResult(cal, thr, (a, b), metrics)


def _auc(p: np.ndarray, y: np.ndarray) -> float | None:
    if len(y) == 0 or y.min() == y.max():
        return None
    order = np.argsort(p)
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    n1 = float(y.sum())
    n0 = len(y) - n1
    return round(float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)), 4)


def export_tflite(model: Any, path: Path) -> None:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        path.write_bytes(conv.convert())


def write_model_dir(result: TrainResult, out_root: Path, version: str, *, training_data: str,
                    key_path: Path | None = None, notes: str = "") -> Path:
    """models/vitals-anomaly/<version>: model.tflite and manifest.json (the feature spec, input kind
    ``baseline``), signed with ``key_path`` when given."""
    model_dir = Path(out_root) / version
    model_dir.mkdir(parents=True, exist_ok=True)
    export_tflite(result.model, model_dir / "model.tflite")
    ch = n_channels(KIND)
    manifest = Manifest(
        name=NAME, version=version, sha256="",
        inputs=[TensorSpec("inputs", [-1, WINDOW, ch], "float32")],
        outputs=[TensorSpec("deterioration", [-1, 1], "float32")],
        metrics=dict(result.metrics), features=replace(SPEC, input=KIND).to_manifest(),
        training_data=training_data, created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        notes=notes or f"input: clinical/model_input.py kind {KIND!r}: {WINDOW} minute buckets x (5 normalised "
                       "vitals, 5 masks, 5 deviations from the own baseline); output calibrated (Platt)",
    )
    (model_dir / "manifest.json").write_bytes(encode_manifest(manifest))
    if key_path is not None:
        sign_model_dir(model_dir, load_private_key(key_path))
    return model_dir


def train_on_ward(out_root: Path, version: str, *, seed: int = 1, n_train: int = 160, n_val: int = 60,
                  hours: float = 10.0, epochs: int = 6, target_fa_per_day: float = 0.5,
                  variants: tuple[str, ...] = ("default",), key_path: Path | None = None,
                  log: Any = print) -> tuple[Path, TrainResult]:
    """Generate ward patients (training seeds ``seed``.., validation seeds ``seed + 1000``.., one per
    generator variant of ``WARD_VARIANTS``: ``n_train`` and ``n_val`` patients each; the held-out sets use
    other seeds and parameters), fit, export."""
    from cloud.training.patient_buckets import ward_patient_buckets
    from cloud.training.ward_scenarios import WARD_VARIANTS, WardParams

    if seed < 1 or seed + len(variants) - 1 > 999:
        raise ValueError("training seeds are 1-999 (validation: the same + 1000)")
    train: list[PatientBuckets] = []
    val: list[PatientBuckets] = []
    for k, name in enumerate(variants):
        wp = replace(WardParams(hours=hours), **WARD_VARIANTS[name])  # type: ignore[arg-type]
        log(f"generating {n_train} training (seed {seed + k}) and {n_val} validation (seed {seed + 1000 + k}) "
            f"ward patients, variant {name}")
        train += ward_patient_buckets(seed + k, n_train, wp)
        val += ward_patient_buckets(seed + 1000 + k, n_val, wp)
    res = fit_from_buckets(train, val, seed, epochs=epochs, target_fa_per_day=target_fa_per_day, log=log)
    res.metrics.update({"train_seed": seed, "val_seed": seed + 1000, "hours_per_patient": hours,
                        "variants": ",".join(variants)})
    what = "default WardParams" if variants == ("default",) else f"WardParams variants {', '.join(variants)}"
    d = write_model_dir(res, out_root, version, key_path=key_path, training_data=(
        f"SYNTHETIC: cloud/training/ward_scenarios.py ({what}), {n_train} training patients per variant "
        f"(seeds {seed}..), {n_val} validation patients per variant (seeds {seed + 1000}.., calibration and "
        f"threshold), {hours:g} h each; no real patient data"))
    return d, res
