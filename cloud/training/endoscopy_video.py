"""Synthetic scope motion over still frames: the demo clip and the polyp-free evaluation video.

A virtual scope moving over the mucosa: a slow zoom and pan inside a box of a still frame, eased in and
out, rendered at a video size (e.g. 1280 x 720). Used by ``examples/video/make_clip.py`` and by
``pulsegate model heldout-sets endoscopy-seg`` (a polyp-free video of val.txt crops for
``model eval endoscopy-seg --sequence``: false findings per minute after smoothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np


def pan_frames(img: np.ndarray, box: tuple[int, int, int, int], steps: int, size: tuple[int, int],
               rng: np.random.Generator) -> Iterator[np.ndarray]:
    """``steps`` BGR frames of ``size`` (w, h): a zoom and pan inside ``box`` (y0, x0, h, w), never leaving it."""
    import cv2

    w, h = size
    by, bx, bh, bw = box
    z0, z1 = rng.uniform(1.0, 1.15), rng.uniform(1.25, 1.6)
    if rng.random() < 0.5:
        z0, z1 = z1, z0
    (cx0, cy0), (cx1, cy1) = rng.uniform(0.35, 0.65, 2), rng.uniform(0.35, 0.65, 2)
    for i in range(steps):
        t = i / max(1, steps - 1)
        s = 0.5 - 0.5 * np.cos(np.pi * t)  # ease in/out
        z = z0 + (z1 - z0) * s
        cw = min(bw / z, bh * w / h)
        ch = cw * h / w
        cx = bx + (cx0 + (cx1 - cx0) * s) * bw
        cy = by + (cy0 + (cy1 - cy0) * s) * bh
        x0 = float(np.clip(cx - cw / 2, bx, bx + bw - cw))
        y0 = float(np.clip(cy - ch / 2, by, by + bh - ch))
        m = np.array([[w / cw, 0, -x0 * w / cw], [0, h / ch, -y0 * h / ch]], np.float32)
        yield cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def write_pan_video(frames: list[np.ndarray], out: Path, seconds_each: float = 1.0, fps: float = 30.0,
                    size: tuple[int, int] = (1280, 720), seed: int = 0) -> int:
    """A video of a pan across each whole BGR frame in turn; returns the number of video frames."""
    import cv2

    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise OSError(f"cannot write {out}")
    rng = np.random.default_rng(seed)
    n = 0
    try:
        for img in frames:
            for f in pan_frames(img, (0, 0, img.shape[0], img.shape[1]), int(seconds_each * fps), size, rng):
                writer.write(f)
                n += 1
    finally:
        writer.release()
    return n
