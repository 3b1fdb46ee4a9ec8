"""Training data for endoscopy-seg 2.x: splits, polyp-free crops, hard negatives, the tf.data pipeline.

- Frames: Kvasir-SEG ``train.txt`` only. The out-of-domain proxy holds out every frame whose original
  image is at least ``OOD_MIN_WIDTH`` px wide (``bboxes.json`` sizes: 720 x 576 up to 1920 x 1072, other
  scopes and processors than the 622 x 530 majority) from training; it is evaluated, never trained on.
- Negatives: every Kvasir-SEG frame holds a polyp, so polyp-free examples are crops away from the mask
  (the mask dilated by ``NEG_MARGIN`` of the side must not touch the crop) at several scales, resized
  to the model input. Training crops come from training frames; the held-out negatives from ``val.txt``
  frames only.
- Sampling: each drawn sample is a polyp frame with probability ``pos_fraction``, else a negative; after
  hard-negative mining, ``hard_fraction`` of the negatives come from the mined set (the model's own
  false positives).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clinical.endoscopy.segmodel import shrink

OOD_MIN_WIDTH = 700
NEG_SCALES = (0.3, 0.4, 0.5, 0.65)  # crop side as a fraction of the frame side
NEG_MARGIN = 0.04
PRESENT_MIN_FRACTION = 0.002  # a sample "holds a polyp" when the mask covers this much of it
KVASIR_ENV = "PULSEGATE_KVASIR"  # where Kvasir-SEG lies, if not next to the checkout


def default_kvasir_dir() -> Path:
    """Kvasir-SEG's folder: ``$PULSEGATE_KVASIR`` when set, else ``../shared/data/kvasir-seg`` beside the
    checkout (where the team's machines keep it)."""
    env = os.environ.get(KVASIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "kvasir-seg"


def read_names(path: Path) -> list[str]:
    return [n.strip() for n in path.read_text().splitlines() if n.strip()]


def original_widths(data_dir: Path) -> dict[str, int]:
    boxes = json.loads((data_dir / "bboxes.json").read_text())
    return {f"{k}.jpg": int(v["width"]) for k, v in boxes.items()}


def ood_split(data_dir: Path, names: list[str]) -> tuple[list[str], list[str]]:
    """(in-domain, held-out) names: frames at least OOD_MIN_WIDTH px wide in the original are held out."""
    widths = original_widths(data_dir) if (data_dir / "bboxes.json").exists() else {}
    held = [n for n in names if widths.get(n, 0) >= OOD_MIN_WIDTH]
    keep = set(held)
    return [n for n in names if n not in keep], held


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
        img = shrink(img, size, size)  # the gateway's own downscale (clinical.endoscopy.segmodel)
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
        xs[i] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        ys[i] = mask >= 128
    return xs, ys


def negative_crops(
    xs: np.ndarray, ys: np.ndarray, size: int, seed: int, scales: tuple[float, ...] = NEG_SCALES,
    tries: int = 40,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polyp-free crops (M, size, size, 3) uint8, the frame each came from, its box (y0, x0, h, w) there.

    Per frame and scale, one square crop (aspect 0.8-1.25) whose box, grown by NEG_MARGIN, holds no
    mask pixel; frames with no such place at a scale give none at it.
    """
    import cv2

    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    src: list[int] = []
    boxes: list[tuple[int, int, int, int]] = []
    for i in range(len(xs)):
        h, w = ys[i].shape
        margin = round(NEG_MARGIN * max(h, w))
        grown = cv2.dilate(ys[i], np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) if margin else ys[i]
        integral = cv2.integral(grown)
        for s in scales:
            for _ in range(tries):
                ar = rng.uniform(0.8, 1.25)
                bh, bw = min(h, int(s * h * np.sqrt(ar))), min(w, int(s * w / np.sqrt(ar)))
                y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
                inside = integral[y0 + bh, x0 + bw] - integral[y0, x0 + bw] - integral[y0 + bh, x0] + integral[y0, x0]
                if inside == 0:
                    crop = xs[i, y0 : y0 + bh, x0 : x0 + bw]
                    out.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR))
                    src.append(i)
                    boxes.append((y0, x0, bh, bw))
                    break
    if not out:
        return np.empty((0, size, size, 3), np.uint8), np.empty((0,), np.int64), np.empty((0, 4), np.int64)
    return np.stack(out), np.asarray(src, np.int64), np.asarray(boxes, np.int64)


@dataclass
class SamplePools:
    """What the training generator draws from; ``hard`` indexes ``neg_x`` and can change between epochs."""

    pos_x: np.ndarray
    pos_y: np.ndarray
    neg_x: np.ndarray
    pos_fraction: float = 0.6
    hard_fraction: float = 0.5
    hard: np.ndarray = field(default_factory=lambda: np.empty((0,), np.int64))
    seed: int = 0
    draws: int = 0  # generators started so far: each one (each epoch's iterator) gets its own stream

    def samples(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        self.draws += 1
        rng = np.random.default_rng((self.seed, self.draws))
        empty = np.zeros(self.pos_y.shape[1:], np.uint8)
        while True:
            if len(self.neg_x) == 0 or rng.random() < self.pos_fraction:
                i = int(rng.integers(len(self.pos_x)))
                yield self.pos_x[i], self.pos_y[i]
            elif len(self.hard) and rng.random() < self.hard_fraction:
                yield self.neg_x[int(self.hard[int(rng.integers(len(self.hard)))])], empty
            else:
                yield self.neg_x[int(rng.integers(len(self.neg_x)))], empty


def targets(img: Any, mask: Any) -> tuple[Any, dict[str, Any]]:
    """Full-size augmented mask -> the training model's targets (polyp s/2, aux64 s/4, aux32 s/8, present)."""
    import tensorflow as tf

    size = int(mask.shape[0])
    m2 = tf.image.resize(mask, [size // 2, size // 2], method="area")
    m4 = tf.image.resize(m2, [size // 4, size // 4], method="area")
    m8 = tf.image.resize(m4, [size // 8, size // 8], method="area")
    present = tf.cast(tf.reduce_mean(tf.cast(m2 >= 0.5, tf.float32)) >= PRESENT_MIN_FRACTION, tf.float32)[None]
    return img, {"polyp": m2, "aux64": m4, "aux32": m8, "present": present}


def dataset(pools: SamplePools, size: int, batch: int, overlays: np.ndarray, threads: int = 2,
            strength: float = 1.0) -> Any:
    """Endless tf.data pipeline of augmented batches (map with ``threads`` parallel calls)."""
    import tensorflow as tf

    from .endoscopy_augment import make_augment

    aug = make_augment(size, overlays, strength)
    sig = (tf.TensorSpec((size, size, 3), tf.uint8), tf.TensorSpec((size, size), tf.uint8))
    opts = tf.data.Options()
    opts.threading.private_threadpool_size = threads
    return (
        tf.data.Dataset.from_generator(pools.samples, output_signature=sig)
        .map(lambda i, m: targets(*aug(i, m)), num_parallel_calls=threads)
        .batch(batch, drop_remainder=True)
        .prefetch(2)
        .with_options(opts)
    )


def write_heldout_sets(data_dir: Path, out: Path, size: int = 256, seed: int = 2024,
                       video_seconds: float = 0.0) -> dict[str, int]:
    """Evaluation folders that were never trained on, for ``pulsegate model eval endoscopy-seg``.

    - ``out/negatives/{images,masks}``: polyp-free crops of ``val.txt`` frames (every scale of
      NEG_SCALES), PNG, with empty masks: false findings per polyp-free frame.
    - ``out/shifted/{images,masks}``: every ``val.txt`` frame re-rendered as another scope would show it
      (cloud.training.endoscopy_shift), with its mask: the second out-of-domain proxy.
    - ``out/ood.txt``: the out-of-domain proxy, every Kvasir-SEG frame (train.txt and val.txt) at least
      OOD_MIN_WIDTH px wide in the original (held out of 2.x training); ``out/ood_val.txt`` the val.txt
      part alone (unseen by 1.x models too). Evaluate with ``--images DATA/images --masks DATA/masks``.
    - with ``video_seconds``: ``out/polyp-free.mp4``, 1280 x 720 at 30 fps, a one-second pan across each
      of the first ``video_seconds`` crops (for ``--sequence``: false findings per minute).
    """
    import cv2

    val = read_names(data_dir / "val.txt")
    xs, ys = load_frames(data_dir, val, size)
    crops, src, _ = negative_crops(xs, ys, size, seed)
    img_dir, mask_dir = out / "negatives" / "images", out / "negatives" / "masks"
    img_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    empty = np.zeros((size, size), np.uint8)
    counts: dict[str, int] = {}
    for k, (crop, i) in enumerate(zip(crops, src, strict=True)):
        stem = f"{Path(val[i]).stem}-neg{k:04d}"
        counts[stem] = 1
        cv2.imwrite(str(img_dir / f"{stem}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(mask_dir / f"{stem}.png"), empty)
    shifted = _write_shifted(data_dir, val, out / "shifted")
    _, ood_train = ood_split(data_dir, read_names(data_dir / "train.txt"))
    _, ood_val = ood_split(data_dir, val)
    (out / "ood.txt").write_text("\n".join(ood_train + ood_val) + "\n")
    (out / "ood_val.txt").write_text("\n".join(ood_val) + "\n")
    video_frames = 0
    if video_seconds > 0:
        from .endoscopy_video import write_pan_video

        bgr = [cv2.cvtColor(c, cv2.COLOR_RGB2BGR) for c in crops[: int(video_seconds)]]
        video_frames = write_pan_video(bgr, out / "polyp-free.mp4", seed=seed)
    return {"negatives": len(counts), "negative_source_frames": len(set(src.tolist())),
            "ood": len(ood_train) + len(ood_val), "ood_val": len(ood_val), "video_frames": video_frames,
            "shifted": shifted}


def _write_shifted(data_dir: Path, names: list[str], out: Path) -> int:
    """``out/{images,masks}``: the frames re-rendered by ``scope_shift`` (seeded by position), masks as they are."""
    import shutil

    import cv2

    from .endoscopy_shift import scope_shift

    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    n = 0
    for k, name in enumerate(names):
        img = cv2.imread(str(data_dir / "images" / name), cv2.IMREAD_COLOR)
        if img is None or not (data_dir / "masks" / name).exists():
            continue
        rgb = scope_shift(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), seed=9000 + k)
        stem = Path(name).stem
        cv2.imwrite(str(out / "images" / f"{stem}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        shutil.copyfile(data_dir / "masks" / name, out / "masks" / Path(name).name)
        n += 1
    return n
