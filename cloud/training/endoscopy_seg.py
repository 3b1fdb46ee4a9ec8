"""Training of the endoscopy-seg model (2.x recipe): polyp segmentation with polyp-free negatives.

The network (cloud.training.endoscopy_net; no ImageNet weights can be fetched here, its U-Net trunk
can start from a 1.x model's weights, ``init_from``) is trained on Kvasir-SEG ``train.txt`` minus the
out-of-domain proxy group, plus polyp-free crops of the same frames (cloud.training.endoscopy_data),
with the augmentation of cloud.training.endoscopy_augment.

Schedule: warm-up then cosine decay over ``epochs`` or ``time_budget_s``, whichever ends first. At the
fractions ``mine_at`` of the schedule, hard-negative mining scores every training negative with the
current model and the top ``hard_top`` of them (its own false positives) are drawn more often from then
on. Nothing is selected on ``val.txt``: the shipped model is the last epoch, at fixed thresholds.

Losses: polyp map and the two deep-supervision maps: batch-pooled soft Dice + focal (gamma 2);
``present`` (frame holds a polyp): binary cross-entropy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .endoscopy_data import SamplePools, dataset, load_frames, negative_crops, ood_split, read_names

INPUT_SIZE = 256
MODEL_NAME = "endoscopy-seg"

__all__ = ["INPUT_SIZE", "MODEL_NAME", "TrainConfig", "TrainResult", "learning_rate", "load_frames",
           "load_result", "read_names", "save_result", "to_int8_tflite", "train"]


@dataclass
class TrainConfig:
    data_dir: Path
    epochs: int = 60
    batch_size: int = 8
    input_size: int = INPUT_SIZE
    width: int = 16  # channels of the first U-Net level (levels: 1, 2, 4, 6, 8 x width)
    init_from: Path | None = None  # a 1.x model.tflite whose weights start the U-Net trunk
    learning_rate: float = 5e-4
    steps_per_epoch: int = 0  # 0: as many samples as polyp frames / pos_fraction
    pos_fraction: float = 0.6
    hard_fraction: float = 0.5
    hard_top: float = 0.25  # fraction of the negatives kept as hard negatives at each mining
    mine_at: tuple[float, ...] = (0.3, 0.6)
    limit: int = 0  # use only the first N training frames (tests); 0 = all
    seed: int = 7
    threads: int = 2
    checkpoint: Path | None = None  # save the Keras weights here after every epoch
    time_budget_s: float = 3000.0  # the schedule ends at this many seconds or epochs, whichever is first
    log: Callable[[str], None] = field(default=print)


@dataclass
class TrainResult:
    tflite: bytes
    epochs_run: int
    train_seconds: float
    history: list[dict[str, float]]
    train_names: list[str] = field(default_factory=list)
    ood_names: list[str] = field(default_factory=list)  # held out of training (out-of-domain proxy)
    negatives: int = 0
    minings: list[dict[str, float]] = field(default_factory=list)


def _focal(y: Any, p: Any) -> Any:
    import tensorflow as tf

    p = tf.clip_by_value(p, 1e-6, 1.0 - 1e-6)
    pt = y * p + (1.0 - y) * (1.0 - p)
    return tf.reduce_mean(-tf.square(1.0 - pt) * tf.math.log(pt)) * 4.0


def seg_loss(y: Any, p: Any) -> Any:
    """Soft Dice pooled over the batch (negatives' false pixels count) + focal."""
    import tensorflow as tf

    inter = tf.reduce_sum(y * p)
    dice = 1.0 - (2.0 * inter + 1.0) / (tf.reduce_sum(y) + tf.reduce_sum(p) + 1.0)
    return dice + _focal(y, p)


def present_loss(y: Any, p: Any) -> Any:
    import tensorflow as tf

    p = tf.clip_by_value(p, 1e-6, 1.0 - 1e-6)
    return -tf.reduce_mean(y * tf.math.log(p) + (1.0 - y) * tf.math.log(1.0 - p))


def mine_hard(export: Any, neg_x: np.ndarray, top: float, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``top`` fraction of negatives the model scores highest, and all scores.

    Score of a crop: the larger of its ``present`` probability and its peak pixel probability.
    """
    scores = np.empty(len(neg_x), np.float32)
    for i in range(0, len(neg_x), batch):
        x = neg_x[i : i + batch].astype(np.float32) / 255.0
        mask, present = export(x, training=False)
        scores[i : i + batch] = np.maximum(np.asarray(present)[:, 0], np.asarray(mask).reshape(len(x), -1).max(1))
    k = max(1, round(top * len(neg_x)))
    return np.argsort(-scores)[:k], scores


def train(cfg: TrainConfig) -> TrainResult:
    import keras
    import tensorflow as tf

    from .endoscopy_augment import text_overlays
    from .endoscopy_net import build_training_model, export_model, load_1x_weights

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already initialised in this process (tests): keep its threads
    keras.utils.set_random_seed(cfg.seed)
    names, ood = ood_split(cfg.data_dir, read_names(cfg.data_dir / "train.txt"))
    if cfg.limit:
        names = names[: cfg.limit]
    xs, ys = load_frames(cfg.data_dir, names, cfg.input_size)
    neg_x, _, _ = negative_crops(xs, ys, cfg.input_size, cfg.seed)
    cfg.log(f"loaded {len(names)} training frames ({len(ood)} held out as out-of-domain proxy), "
            f"{len(neg_x)} polyp-free crops")
    pools = SamplePools(xs, ys, neg_x, cfg.pos_fraction, cfg.hard_fraction, seed=cfg.seed)
    batch = min(cfg.batch_size, len(names))
    ds = dataset(pools, cfg.input_size, batch, text_overlays(64, cfg.input_size, cfg.seed), cfg.threads)
    steps = cfg.steps_per_epoch or max(1, int(len(names) / cfg.pos_fraction) // batch)
    model = build_training_model(cfg.input_size, cfg.width)
    if cfg.init_from is not None:
        cfg.log(f"warm start: {load_1x_weights(model, cfg.init_from)} trunk convolutions from {cfg.init_from}")
    export = export_model(model)
    optimizer = keras.optimizers.Adam(cfg.learning_rate)
    model.compile(
        optimizer=optimizer,
        loss={"polyp": seg_loss, "aux64": seg_loss, "aux32": seg_loss, "present": present_loss},
        loss_weights={"polyp": 1.0, "aux64": 0.4, "aux32": 0.2, "present": 0.5},
    )
    history: list[dict[str, float]] = []
    minings: list[dict[str, float]] = []
    pending = sorted(cfg.mine_at)
    start = time.monotonic()
    epochs_run = 0
    for epoch in range(cfg.epochs):
        elapsed = time.monotonic() - start
        progress = epoch / cfg.epochs
        if cfg.time_budget_s:
            progress = max(progress, elapsed / cfg.time_budget_s)
        if progress >= 1.0:
            cfg.log("time budget reached, stopping")
            break
        if pending and progress >= pending[0] and len(neg_x):
            pending.pop(0)
            hard, scores = mine_hard(export, neg_x, cfg.hard_top)
            pools.hard = hard
            m = {"epoch": epoch, "mean_score": float(scores.mean()), "hard_min_score": float(scores[hard].min()),
                 "over_half": float((scores >= 0.5).mean())}
            minings.append(m)
            cfg.log(f"hard-negative mining: {len(hard)} kept; negatives scoring >= 0.5: {m['over_half']:.3f}")
        lr = learning_rate(cfg.learning_rate, progress, warmup=min(0.05, 2 / cfg.epochs))
        optimizer.learning_rate.assign(lr)
        h = model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
        epochs_run += 1
        loss = float(h.history["loss"][-1])
        elapsed = time.monotonic() - start
        history.append({"epoch": epoch + 1, "loss": loss, "lr": lr, "elapsed_s": elapsed})
        cfg.log(f"epoch {epoch + 1}/{cfg.epochs} lr {lr:.5f} loss {loss:.4f} elapsed {elapsed:.0f}s")
        if cfg.checkpoint is not None:
            model.save_weights(str(cfg.checkpoint))
    train_s = time.monotonic() - start
    calib = np.concatenate([xs[:48], neg_x[:16]]) if len(neg_x) else xs
    tflite = to_int8_tflite(export, _representative(calib))
    return TrainResult(tflite=tflite, epochs_run=epochs_run, train_seconds=train_s, history=history,
                       train_names=names, ood_names=ood, negatives=len(neg_x), minings=minings)


def save_result(result: TrainResult, stem: Path) -> None:
    """``stem``.tflite and ``stem``.json (everything but the model bytes)."""
    import dataclasses
    import json

    stem.with_suffix(".tflite").write_bytes(result.tflite)
    body = {k: v for k, v in dataclasses.asdict(result).items() if k != "tflite"}
    stem.with_suffix(".json").write_text(json.dumps(body))


def load_result(stem: Path) -> TrainResult:
    import json

    body = json.loads(stem.with_suffix(".json").read_text())
    return TrainResult(tflite=stem.with_suffix(".tflite").read_bytes(), **body)


def _representative(xs: np.ndarray, n: int = 64) -> Callable[[], Iterator[list[np.ndarray]]]:
    rng = np.random.default_rng(0)
    idx = rng.choice(len(xs), size=min(n, len(xs)), replace=False)

    def gen() -> Iterator[list[np.ndarray]]:
        for i in idx:
            yield [xs[i : i + 1].astype(np.float32) / 255.0]

    return gen


def to_int8_tflite(model: Any, representative: Callable[[], Iterator[list[np.ndarray]]]) -> bytes:
    """Full-integer quantisation: int8 input, weights, activations and outputs."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    data: bytes = conv.convert()
    return data


def learning_rate(peak: float, progress: float, warmup: float) -> float:
    """Linear warm-up then cosine decay to 2 % of the peak, over progress in [0, 1]."""
    if progress < warmup:
        return peak * (0.1 + 0.9 * progress / warmup)
    t = (progress - warmup) / max(1e-9, 1.0 - warmup)
    return peak * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t))))
