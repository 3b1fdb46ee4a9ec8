"""Finding, verifying and running the endoscopy-seg model.

The shipped model lives in ``models/endoscopy-seg/<version>/`` (repo root by
default, see :mod:`edge.video.config`); only a directory whose manifest
signature verifies with a trusted key and whose sha256 matches is loaded.
Inference goes through :class:`clinical.litert.ModelRunner`, the gateway's one
LiteRT wrapper.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clinical.litert import ModelRunner
from wire.model_manifest import Manifest, ManifestError, load_public_key, verify_model_dir

MODEL_NAME = "endoscopy-seg"


def load_verified(model_dir: Path, trusted_keys: Sequence[Path], threads: int = 1) -> tuple[ModelRunner, Manifest]:
    """Verify the signed manifest and open the model; raises ManifestError or ModelError."""
    keys = [load_public_key(k) for k in trusted_keys]
    manifest = verify_model_dir(model_dir, keys)
    if manifest.name != MODEL_NAME:
        raise ManifestError(f"{model_dir}: manifest names {manifest.name!r}, expected {MODEL_NAME!r}")
    return ModelRunner(model_dir / "model.tflite", manifest=manifest, num_threads=threads), manifest


def preprocess(image_bgr: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """BGR frame of any size -> (1, H, W, 3) float32 RGB in [0, 1] at the model's input size."""
    import cv2

    h, w = size
    small = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_AREA)
    rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    if out is None:
        out = np.empty((1, h, w, 3), np.float32)
    np.multiply(rgb, np.float32(1.0 / 255.0), out=out[0], casting="unsafe")
    return out


def probability_map(runner: ModelRunner, batch: np.ndarray) -> np.ndarray:
    """(N, h, w) polyp probabilities for a preprocessed batch."""
    (prob,) = runner.run(batch)
    return np.asarray(prob[..., 0], dtype=np.float32)
