"""Training of the endoscopy-seg model: polyp segmentation on Kvasir-SEG frames.

A small U-Net trained from scratch (no pretrained weights can be fetched) with
augmentation, then converted to a fully int8 TFLite model with a
representative dataset drawn from the training split. The model takes one RGB
frame as float32 in [0, 1] at 256 x 256 (int8 inside; the edge's ModelRunner
quantises) and returns a polyp probability map at half resolution (128 x 128),
which the edge upsamples to the frame.

Figures are measured on ``val.txt`` only, through the same ModelRunner the
gateway uses (clinical.endoscopy.evaluate), never on frames the model trained on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

INPUT_SIZE = 256
MODEL_NAME = "endoscopy-seg"


@dataclass
class TrainConfig:
    data_dir: Path
    epochs: int = 40
    batch_size: int = 8
    input_size: int = INPUT_SIZE
    width: int = 16  # channels of the first level; levels use 1, 2, 4, 6, 8 x width
    learning_rate: float = 2e-3
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


def read_names(path: Path) -> list[str]:
    return [n.strip() for n in path.read_text().splitlines() if n.strip()]


def load_frames(data_dir: Path, names: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, size, size, 3) uint8 RGB and masks (N, size, size) uint8 {0, 1}."""
    import cv2

    xs = np.empty((len(names), size, size, 3), np.uint8)
    ys = np.empty((len(names), size, size), np.uint8)
    for i, name in enumerate(names):
        img = cv2.imread(str(data_dir / "images" / name), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(data_dir / "masks" / name), cv2.IMREAD_GRAYSCALE)
        if img is None or mask is None:
            raise FileNotFoundError(f"cannot read image or mask {name} in {data_dir}")
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
        xs[i] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        ys[i] = mask >= 128
    return xs, ys


def build_model(input_size: int = INPUT_SIZE, width: int = 16) -> Any:
    """U-Net with a stride-2 stem: encoder 128..8 px, decoder back to 128 px."""
    import keras
    from keras import layers

    def block(x: Any, ch: int) -> Any:
        for _ in range(2):
            x = layers.Conv2D(ch, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        return x

    mult = (1, 2, 4, 6, 8)
    inp = keras.Input((input_size, input_size, 3), name="frame")
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    skips = []
    for i, m in enumerate(mult):
        if i > 0:
            x = layers.MaxPooling2D(2)(x)
        x = block(x, width * m)
        skips.append(x)
    for m, skip in zip(reversed(mult[:-1]), reversed(skips[:-1]), strict=True):
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = layers.Concatenate()([x, skip])
        x = block(x, width * m)
    out = layers.Conv2D(1, 1, activation="sigmoid", name="polyp")(x)
    return keras.Model(inp, out, name="endoscopy_seg")


def _augment_fn(size: int, seed: int) -> Callable[[Any, Any], tuple[Any, Any]]:
    import tensorflow as tf

    out = size // 2

    def aug(img: Any, mask: Any) -> tuple[Any, Any]:
        img = tf.cast(img, tf.float32) / 255.0
        mask = tf.cast(mask[..., None], tf.float32)
        both = tf.concat([img, mask], axis=-1)
        both = tf.cond(tf.random.uniform(()) < 0.5, lambda: tf.image.flip_left_right(both), lambda: both)
        both = tf.cond(tf.random.uniform(()) < 0.5, lambda: tf.image.flip_up_down(both), lambda: both)
        both = tf.image.rot90(both, tf.random.uniform((), 0, 4, dtype=tf.int32))
        # random zoom / pan: crop a box of 60..100 % of the side and resize back
        scale = tf.random.uniform((), 0.6, 1.0)
        ar = tf.random.uniform((), 0.8, 1.25)
        h = tf.minimum(scale * tf.sqrt(ar), 1.0)
        w = tf.minimum(scale / tf.sqrt(ar), 1.0)
        y0 = tf.random.uniform((), 0.0, 1.0 - h + 1e-6)
        x0 = tf.random.uniform((), 0.0, 1.0 - w + 1e-6)
        box = tf.stack([y0, x0, y0 + h, x0 + w])[None]
        both = tf.image.crop_and_resize(both[None], box, [0], [size, size])[0]
        img, mask = both[..., :3], both[..., 3:]
        img = tf.image.random_brightness(img, 0.15)
        img = tf.image.random_contrast(img, 0.75, 1.3)
        img = tf.image.random_saturation(img, 0.75, 1.3)
        img = tf.image.random_hue(img, 0.04)
        img = tf.clip_by_value(img, 0.0, 1.0)
        mask = tf.image.resize(mask, [out, out], method="area")
        return img, mask

    return aug


def _loss(y_true: Any, y_pred: Any) -> Any:
    import tensorflow as tf

    eps = 1e-6
    p = tf.clip_by_value(y_pred, eps, 1.0 - eps)
    bce = -tf.reduce_mean(y_true * tf.math.log(p) + (1.0 - y_true) * tf.math.log(1.0 - p))
    inter = tf.reduce_sum(y_true * p, axis=[1, 2, 3])
    denom = tf.reduce_sum(y_true + p, axis=[1, 2, 3])
    dice = 1.0 - tf.reduce_mean((2.0 * inter + 1.0) / (denom + 1.0))
    return bce + dice


def train(cfg: TrainConfig) -> TrainResult:
    import keras
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already initialised in this process (tests): keep its threads
    keras.utils.set_random_seed(cfg.seed)
    names = read_names(cfg.data_dir / "train.txt")
    if cfg.limit:
        names = names[: cfg.limit]
    xs, ys = load_frames(cfg.data_dir, names, cfg.input_size)
    cfg.log(f"loaded {len(names)} training frames")
    batch = min(cfg.batch_size, len(names))
    ds = (
        tf.data.Dataset.from_tensor_slices((xs, ys))
        .shuffle(len(names), seed=cfg.seed, reshuffle_each_iteration=True)
        .map(_augment_fn(cfg.input_size, cfg.seed), num_parallel_calls=1)
        .batch(batch, drop_remainder=True)
        .prefetch(2)
    )
    steps = max(1, len(names) // batch)
    model = build_model(cfg.input_size, cfg.width)
    optimizer = keras.optimizers.Adam(cfg.learning_rate)
    model.compile(optimizer=optimizer, loss=_loss)
    history: list[dict[str, float]] = []
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
        lr = learning_rate(cfg.learning_rate, progress, warmup=min(0.05, 2 / cfg.epochs))
        optimizer.learning_rate.assign(lr)
        h = model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)  # the dataset shuffles
        epochs_run += 1
        loss = float(h.history["loss"][-1])
        elapsed = time.monotonic() - start
        history.append({"epoch": epoch + 1, "loss": loss, "lr": lr, "elapsed_s": elapsed})
        cfg.log(f"epoch {epoch + 1}/{cfg.epochs} lr {lr:.5f} loss {loss:.4f} elapsed {elapsed:.0f}s")
        if cfg.checkpoint is not None:
            model.save_weights(str(cfg.checkpoint))
    train_s = time.monotonic() - start
    tflite = to_int8_tflite(model, _representative(xs, cfg.input_size))
    return TrainResult(tflite=tflite, epochs_run=epochs_run, train_seconds=train_s, history=history)


def _representative(xs: np.ndarray, size: int, n: int = 64) -> Callable[[], Iterator[list[np.ndarray]]]:
    rng = np.random.default_rng(0)
    idx = rng.choice(len(xs), size=min(n, len(xs)), replace=False)

    def gen() -> Iterator[list[np.ndarray]]:
        for i in idx:
            yield [xs[i : i + 1].astype(np.float32) / 255.0]

    return gen


def to_int8_tflite(model: Any, representative: Callable[[], Iterator[list[np.ndarray]]]) -> bytes:
    """Full-integer quantisation: int8 input, weights, activations and output."""
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
