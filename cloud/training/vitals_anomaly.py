"""Train the vitals-anomaly model on generated scenarios and export it to .tflite with a manifest.

Method: windows of WINDOW one-minute buckets (clinical/features.py, the gateway's own spec) from
training scenarios, labelled 1 from 15 % into a deterioration until its event,
0 for stable patients and for the time before onset; the ambiguous start of a
deterioration is left out. A small dense network (flatten -> 32 -> 16 -> 1,
sigmoid) is fitted with class weights; the alarm threshold is chosen on a
separate validation set (other seeds) at the ALARM level: the gateway's
alarm logic (score >= threshold held for ``delay_s``, value hysteresis 0.8 x
threshold, clear delay) is simulated over every minute of each validation
scenario, and the threshold is the lowest one whose false alarms per bed-day
in stable time stay under ``target_fa_per_day``.

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

from clinical.features import N_FEATURES, SPEC, WINDOW, windows
from cloud.training.labels import buckets, labels
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


def simulate_alarms(scores: np.ndarray, thr: float, delay_buckets: int = 2, clear_buckets: int = 10,
                    hyst: float = 0.8) -> list[int]:
    """Bucket indices where the gateway would raise an anomaly alarm (one score per minute bucket)."""
    raised: list[int] = []
    on = False
    since = -1
    alarm = False
    off = 0
    for k, s in enumerate(scores):
        now_on = s >= thr or (on and s >= hyst * thr)
        if now_on:
            off = 0
            if not on:
                since = k
            if not alarm and k - since >= delay_buckets:
                alarm = True
                raised.append(k)
        else:
            if alarm:
                off += 1
                if off >= clear_buckets:
                    alarm = False
        on = now_on
    return raised


@dataclass
class ScenarioScores:
    scores: np.ndarray  # one per bucket from index 10
    rel_end: np.ndarray  # bucket end, seconds since scenario start
    onset_s: float | None
    event_s: float | None


def alarm_metrics(items: list[ScenarioScores], thr: float) -> tuple[float | None, float]:
    """(sensitivity between onset and event, false alarms per bed-day of stable time) at ``thr``."""
    det = n_det = fa = 0
    stable_s = 0.0
    for it in items:
        raised = [float(it.rel_end[k]) for k in simulate_alarms(it.scores, thr)]
        stable_end = it.onset_s if it.onset_s is not None else float(it.rel_end[-1])
        stable_s += stable_end
        fa += sum(1 for t in raised if t < stable_end)
        if it.onset_s is not None and it.event_s is not None:
            n_det += 1
            det += any(it.onset_s <= t <= it.event_s for t in raised)
    return (det / n_det if n_det else None), fa / max(stable_s / 86400.0, 1e-9)


def choose_alarm_threshold(items: list[ScenarioScores], target_fa_per_day: float) -> tuple[float, float | None, float]:
    best = (0.99, *alarm_metrics(items, 0.99))
    for thr in np.arange(0.30, 0.995, 0.01):
        sens, fa = alarm_metrics(items, float(thr))
        if fa <= target_fa_per_day:
            return float(thr), sens, fa
    return best


def score_scenarios(model: Any, seed: int, count: int, gp: GeneratorParams) -> list[ScenarioScores]:
    out: list[ScenarioScores] = []
    for i in range(count):
        sc = generate(seed, i, gp)
        ends, rows = buckets(sc)
        at = np.arange(10, len(ends))
        s = model.predict(windows(rows, at), batch_size=2048, verbose=0)[:, 0]
        out.append(ScenarioScores(s, ends[at] - sc.start, sc.onset_s, sc.event_s))
    return out


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
    target_fa_per_day: float = 0.5,
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
    auc = tf.keras.metrics.AUC()
    auc.update_state(va.y, val_scores)
    items = score_scenarios(model, seed + 500, n_val, gp)
    thr, sens, fa = choose_alarm_threshold(items, target_fa_per_day)
    log(f"validation window AUC {float(auc.result()):.4f}; alarm threshold {thr:.2f}: sensitivity {sens}, "
        f"false alarms/bed-day {fa:.2f}")

    model_dir = out_root / version
    model_dir.mkdir(parents=True, exist_ok=True)
    export_tflite(model, model_dir / "model.tflite")
    metrics: dict[str, float | int | str | None] = {
        "threshold": round(thr, 6),
        "min_buckets": 10,
        "bucket_s": 60,
        "window": WINDOW,
        "val_auc_window": round(float(auc.result()), 4),
        "val_alarm_sensitivity": None if sens is None else round(sens, 4),
        "val_false_alarms_per_bed_day": round(fa, 3),
        "val_fa_per_day_target": target_fa_per_day,
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
        features=SPEC.to_manifest(),
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
