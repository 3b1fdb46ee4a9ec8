"""Train the vitals-anomaly model on generated scenarios and export it to .tflite with a manifest.

Method: windows of WINDOW one-minute buckets (cloud/training/features.py) from
training scenarios, labelled 1 from 15 % into a deterioration until its event,
0 for stable patients and for the time before onset; the ambiguous start of a
deterioration is left out. A small dense network (flatten -> 32 -> 16 -> 1,
sigmoid) is fitted with class weights; the alarm threshold is chosen on a
separate validation set (other seeds) as the lowest score that keeps the
window-level false-positive rate under ``target_fpr``.

Needs the ``train`` extra (tensorflow-cpu); imported only by the command handler.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from cloud.training.features import N_FEATURES, WINDOW, buckets, labels, windows
from cloud.training.scenarios import GeneratorParams, generate
from wire.model_manifest import Manifest, TensorSpec, encode_manifest, load_private_key, sign_model_dir

NAME = "vitals-anomaly"


@dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray
    scenarios: int


def build_dataset(seed: int, count: int, gp: GeneratorParams, neg_stride: int = 4, pos_stride: int = 1) -> Dataset:
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for i in range(count):
        sc = generate(seed, i, gp)
        ends, rows = buckets(sc)
        y = labels(sc, ends)
        idx = np.arange(len(ends))
        keep = ((y == 0) & (idx % neg_stride == 0)) | ((y == 1) & (idx % pos_stride == 0))
        keep &= idx >= 10  # the gateway starts scoring after 10 buckets of history
        at = idx[keep]
        xs.append(windows(rows, at))
        ys.append(y[at].astype(np.float32))
    return Dataset(np.concatenate(xs), np.concatenate(ys), count)


def build_model(seed: int) -> Any:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input(shape=(WINDOW, N_FEATURES), name="windows")
    x = tf.keras.layers.Flatten()(inp)
    x = tf.keras.layers.Dense(32, activation="relu")(x)
    x = tf.keras.layers.Dropout(0.2)(x)
    x = tf.keras.layers.Dense(16, activation="relu")(x)
    out = tf.keras.layers.Dense(1, activation="sigmoid", name="deterioration")(x)
    model = tf.keras.Model(inp, out)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=[tf.keras.metrics.AUC(name="auc")])
    return model


def choose_threshold(scores: np.ndarray, y: np.ndarray, target_fpr: float) -> float:
    neg = np.sort(scores[y == 0])
    if len(neg) == 0:
        return 0.5
    thr = float(neg[min(len(neg) - 1, int(np.ceil((1.0 - target_fpr) * len(neg))))])
    return float(min(max(thr, 0.05), 0.99))


def export_tflite(model: Any, path: Path) -> None:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        path.write_bytes(conv.convert())


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict[str, float | int | str | None]


def train(
    out_root: Path,
    version: str,
    *,
    seed: int = 1,
    n_train: int = 240,
    n_val: int = 60,
    epochs: int = 8,
    hours: float = 12.0,
    target_fpr: float = 0.005,
    key_path: Path | None = None,
    log: Any = print,
) -> TrainResult:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    gp = GeneratorParams(hours=hours)
    log(f"generating {n_train} training and {n_val} validation scenarios ({hours} h each)")
    tr = build_dataset(seed, n_train, gp)
    va = build_dataset(seed + 500, n_val, gp, neg_stride=2)
    pos = float(tr.y.mean())
    log(f"train windows {len(tr.y)} (positive {pos:.3f}), validation windows {len(va.y)}")
    model = build_model(seed)
    cw = {0: 0.5 / max(1e-6, 1 - pos), 1: 0.5 / max(1e-6, pos)}
    model.fit(tr.x, tr.y, validation_data=(va.x, va.y), epochs=epochs, batch_size=256, class_weight=cw,
              verbose=2 if log is print else 0)
    val_scores = model.predict(va.x, batch_size=1024, verbose=0)[:, 0]
    thr = choose_threshold(val_scores, va.y, target_fpr)
    auc = tf.keras.metrics.AUC()
    auc.update_state(va.y, val_scores)
    sens = float((val_scores[va.y == 1] >= thr).mean()) if (va.y == 1).any() else None
    log(f"validation AUC {float(auc.result()):.4f}, threshold {thr:.4f}, window sensitivity {sens}")

    model_dir = out_root / version
    model_dir.mkdir(parents=True, exist_ok=True)
    export_tflite(model, model_dir / "model.tflite")
    metrics: dict[str, float | int | str | None] = {
        "threshold": round(thr, 6),
        "min_buckets": 10,
        "bucket_s": 60,
        "window": WINDOW,
        "val_auc_window": round(float(auc.result()), 4),
        "val_window_sensitivity": None if sens is None else round(sens, 4),
        "val_window_fpr_target": target_fpr,
        "train_scenarios": n_train,
        "val_scenarios": n_val,
        "train_seed": seed,
        "val_seed": seed + 500,
        "hours_per_scenario": hours,
    }
    manifest = Manifest(
        name=NAME,
        version=version,
        sha256="",
        inputs=[TensorSpec("windows", [-1, WINDOW, N_FEATURES], "float32")],
        outputs=[TensorSpec("deterioration", [-1, 1], "float32")],
        metrics=metrics,
        training_data=f"SYNTHETIC: cloud/training/scenarios.py, {n_train} training scenarios (seed {seed}), "
        f"{n_val} validation scenarios (seed {seed + 500}); no real patient data",
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        notes="inputs: 60 one-minute buckets x (HR, SpO2, resp, NIBP sys, temp normalised; then 5 masks)",
    )
    (model_dir / "manifest.json").write_bytes(encode_manifest(manifest))
    if key_path is not None:
        sign_model_dir(model_dir, load_private_key(key_path))
    return TrainResult(model_dir, metrics)


def update_manifest_metrics(model_dir: Path, extra: dict[str, float | int | str | None], key_path: Path | None) -> None:
    """Add evaluation figures to the manifest's metrics and re-sign it."""
    path = model_dir / "manifest.json"
    m = msgspec.json.decode(path.read_bytes(), type=Manifest)
    m.metrics = {**m.metrics, **extra}
    path.write_bytes(encode_manifest(m))
    if key_path is not None:
        sign_model_dir(model_dir, load_private_key(key_path))
