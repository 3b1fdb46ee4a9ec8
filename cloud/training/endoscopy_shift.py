"""A second out-of-domain proxy: Kvasir-SEG ``val.txt`` frames as another scope and processor would show them.

CVC-ClinicDB (another hospital, 384 x 288 frames from an older processor) is not available here. This
proxy re-renders each ``val.txt`` frame once, deterministically (seeded per frame), with what differs
between such sources: lower capture resolution (the frame down-scaled to ``SHIFT_SCALE`` of its side,
then back: the 256 px copy at 60 % is about what a 384 x 288 source gives after the processor's overlays),
a colour cast (per-channel gains), gamma, a little defocus and JPEG at quality 50-70. Both models never
saw these frames; the 2.x augmentation covers the same kinds of change (in other ranges), so this
measures robustness to them rather than true generalisation, and is reported as a proxy only.
"""

from __future__ import annotations

import numpy as np

SHIFT_SCALE = 0.6


def scope_shift(rgb: np.ndarray, seed: int) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 -> the same size, re-rendered as described in the module docstring."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    low = cv2.resize(rgb, (max(1, round(w * SHIFT_SCALE)), max(1, round(h * SHIFT_SCALE))),
                     interpolation=cv2.INTER_AREA)
    img = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    img = img * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    img = np.clip(img, 0.0, 1.0) ** np.float32(rng.uniform(0.8, 1.25))
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.2)))
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 71))])
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else None
    return out if decoded is None else np.asarray(decoded, np.uint8)
