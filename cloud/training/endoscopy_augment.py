"""Training augmentation for endoscopy-seg 2.x: what differs between scopes and hospitals.

Applied per sample in a tf.data map (the same to polyp frames and polyp-free crops):

- geometry: flips, 90-degree rotations, zoom/pan crops (50-100 % of the side);
- resolution changes: down-scaling to 30-80 % and back (lower-resolution sources);
- blur and defocus: Gaussian blur, sigma 0.5-2.5 px;
- colour: brightness, contrast, saturation, hue, per-channel white-balance gains, gamma;
- illumination fall-off: vignetting around a random centre;
- specular highlights: up to six small saturated white blobs;
- black borders: side bars or a round field of view (the polyp under them is masked out);
- on-screen text: overlays drawn beforehand with OpenCV (dates, numbers, scope names, the
  position-guide box some processors show), composited in a random colour;
- sensor noise and JPEG artefacts (quality 25-90).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

TEXT_WORDS = ("OLYMPUS", "CV-190", "EVIS EXERA", "PENTAX", "FUJINON", "EPK-i", "NBI", "WLI", "ID", "Age",
              "Sex M", "Sex F", "Eh:A8", "Cvp:1", "CE:0", "Zoom x1.2", "AGC", "Mag", "Fr 3", "D.F.")


def text_overlays(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` alpha masks (n, size, size) float32 in [0, 1] with on-screen text and boxes."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size), np.float32)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(n):
        canvas = np.zeros((size, size), np.uint8)
        for _ in range(int(rng.integers(1, 6))):
            kind = rng.random()
            if kind < 0.35:
                text = f"{rng.integers(1, 29):02d}/{rng.integers(1, 13):02d}/{rng.integers(2005, 2027)}"
            elif kind < 0.55:
                text = f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}"
            else:
                text = str(rng.choice(TEXT_WORDS))
            scale = float(rng.uniform(0.25, 0.6)) * size / 256
            x = int(rng.uniform(0, 0.8) * size)
            y = int(rng.choice([rng.uniform(0.04, 0.2), rng.uniform(0.8, 0.98)]) * size)
            cv2.putText(canvas, text, (x, y), font, scale, 255, 1, cv2.LINE_AA)
        if rng.random() < 0.3:  # the position-guide box in a bottom corner
            bw, bh = int(rng.uniform(0.15, 0.3) * size), int(rng.uniform(0.12, 0.25) * size)
            x0 = 0 if rng.random() < 0.5 else size - bw
            cv2.rectangle(canvas, (x0, size - bh), (x0 + bw - 1, size - 1), 255, int(rng.integers(1, 3)))
        out[i] = canvas.astype(np.float32) / 255.0
    return out


def _gaussian_blur(img: Any, sigma: Any) -> Any:
    import tensorflow as tf

    r = 4
    xs = tf.range(-r, r + 1, dtype=tf.float32)
    k = tf.exp(-0.5 * tf.square(xs / sigma))
    k = k / tf.reduce_sum(k)
    kx = tf.tile(tf.reshape(k, [1, 2 * r + 1, 1, 1]), [1, 1, 3, 1])
    ky = tf.tile(tf.reshape(k, [2 * r + 1, 1, 1, 1]), [1, 1, 3, 1])
    x = tf.nn.depthwise_conv2d(img[None], kx, [1, 1, 1, 1], "SAME")
    x = tf.nn.depthwise_conv2d(x, ky, [1, 1, 1, 1], "SAME")
    return x[0]


def make_augment(size: int, overlays: np.ndarray, strength: float = 1.0) -> Callable[[Any, Any], tuple[Any, Any]]:
    """(uint8 image HxWx3, uint8 mask HxW) -> (float image in [0, 1], float mask HxWx1), both ``size``."""
    import tensorflow as tf

    bank = tf.constant(overlays[..., None])
    yy, xx = tf.meshgrid(tf.linspace(0.0, 1.0, size), tf.linspace(0.0, 1.0, size), indexing="ij")

    def chance(p: float) -> Any:
        return tf.random.uniform(()) < p * strength

    def u(lo: float, hi: float, shape: tuple[int, ...] = ()) -> Any:
        return tf.random.uniform(shape, lo, hi)

    def aug(img: Any, mask: Any) -> tuple[Any, Any]:
        img = tf.image.convert_image_dtype(img, tf.float32)
        mask = tf.cast(mask[..., None], tf.float32)
        both = tf.concat([img, mask], axis=-1)
        both = tf.cond(chance(0.5), lambda: tf.image.flip_left_right(both), lambda: both)
        both = tf.cond(chance(0.5), lambda: tf.image.flip_up_down(both), lambda: both)
        both = tf.image.rot90(both, tf.random.uniform((), 0, 4, dtype=tf.int32))
        scale, ar = u(0.5, 1.0), u(0.8, 1.25)
        h = tf.minimum(scale * tf.sqrt(ar), 1.0)
        w = tf.minimum(scale / tf.sqrt(ar), 1.0)
        y0, x0 = u(0.0, 1.0) * (1.0 - h), u(0.0, 1.0) * (1.0 - w)
        box = tf.stack([y0, x0, y0 + h, x0 + w])[None]
        both = tf.image.crop_and_resize(both[None], box, [0], [size, size])[0]
        img, mask = both[..., :3], both[..., 3:]
        # resolution change: a lower-resolution source up-scaled by the processor
        low = tf.cast(tf.cast(size, tf.float32) * u(0.3, 0.8), tf.int32)
        img = tf.cond(chance(0.3), lambda: tf.image.resize(tf.image.resize(img, [low, low], "area"), [size, size]),
                      lambda: img)
        img = tf.cond(chance(0.3), lambda: _gaussian_blur(img, u(0.5, 2.5)), lambda: img)
        # colour and white balance
        img = tf.image.random_brightness(img, 0.15 * strength)
        img = tf.image.random_contrast(img, 1 - 0.3 * strength, 1 + 0.3 * strength)
        img = tf.image.random_saturation(img, 1 - 0.35 * strength, 1 + 0.35 * strength)
        img = tf.image.random_hue(img, 0.05 * strength)
        img = tf.clip_by_value(img, 0.0, 1.0)
        img = tf.cond(chance(0.7), lambda: img * u(0.8, 1.2, (3,)), lambda: img)
        img = tf.cond(chance(0.4), lambda: tf.pow(tf.clip_by_value(img, 1e-4, 1.0), u(0.7, 1.4)), lambda: img)
        # illumination fall-off around a random centre
        cy, cx, k = u(0.3, 0.7), u(0.3, 0.7), u(0.2, 0.8)
        fall = 1.0 - k * tf.clip_by_value((tf.square(yy - cy) + tf.square(xx - cx)) * 2.0, 0.0, 1.0)
        img = tf.cond(chance(0.5), lambda: img * fall[..., None], lambda: img)
        # specular highlights: small saturated white blobs
        def speculars(im: Any) -> Any:
            n = 6
            py, px = u(0.0, 1.0, (n, 1, 1)), u(0.0, 1.0, (n, 1, 1))
            sy, sx = u(0.004, 0.02, (n, 1, 1)), u(0.004, 0.02, (n, 1, 1))
            on = tf.cast(tf.range(n) < tf.random.uniform((), 1, n + 1, dtype=tf.int32), tf.float32)[:, None, None]
            blob = tf.exp(-0.5 * (tf.square((yy - py) / sy) + tf.square((xx - px) / sx))) * on
            s = tf.clip_by_value(tf.reduce_sum(blob, axis=0) * 1.5, 0.0, 1.0)[..., None]
            return im * (1.0 - s) + s

        img = tf.cond(chance(0.4), lambda: speculars(img), lambda: img)
        # black borders: side bars or a round field of view
        def borders(im: Any, m: Any) -> tuple[Any, Any]:
            left, right = u(0.0, 0.15), u(0.0, 0.15)
            top, bottom = u(0.0, 0.08), u(0.0, 0.08)
            bars = (xx > left) & (xx < 1.0 - right) & (yy > top) & (yy < 1.0 - bottom)
            radius = u(0.5, 0.72)
            disc = tf.square(xx - 0.5) + tf.square(yy - 0.5) < tf.square(radius)
            keep = tf.cast(tf.cond(chance(0.5), lambda: bars, lambda: disc), tf.float32)[..., None]
            return im * keep, m * keep

        img, mask = tf.cond(chance(0.3), lambda: borders(img, mask), lambda: (img, mask))
        # on-screen text in a random colour
        def text(im: Any) -> Any:
            a = tf.gather(bank, tf.random.uniform((), 0, overlays.shape[0], dtype=tf.int32))
            colour = tf.where(chance(0.5), tf.ones((3,)), u(0.3, 1.0, (3,)))
            return im * (1.0 - a) + a * colour

        img = tf.cond(chance(0.4), lambda: text(img), lambda: img)
        img = tf.cond(chance(0.3), lambda: img + tf.random.normal(tf.shape(img), 0.0, u(0.005, 0.03)), lambda: img)
        img = tf.clip_by_value(img, 0.0, 1.0)
        img = tf.cond(chance(0.4), lambda: tf.image.random_jpeg_quality(img, 25, 90), lambda: img)
        img = tf.reshape(tf.clip_by_value(img, 0.0, 1.0), [size, size, 3])
        return img, tf.reshape(mask, [size, size, 1])

    return aug
