"""Finding, verifying and running the endoscopy-seg model.

The shipped model lives in ``models/endoscopy-seg/<version>/`` (repo root by
default, see :mod:`edge.video.config`); only a directory whose manifest
signature verifies with a trusted key and whose sha256 matches is loaded.
Inference goes through :class:`clinical.litert.ModelRunner`, the gateway's one
LiteRT wrapper.

A model has a polyp probability map output (N, h, w, 1) and, from 2.0.0 on, a frame-level "polyp
present" probability (N, 1); the manifest lists the outputs and :class:`OutputRoles` tells them apart
by shape, so the gateway runs 1.x and 2.x models alike.

From 2.1.0 on the manifest also holds the model's operating point (``thresholds``: pixel threshold
of the map, presence threshold of the frame-level score), chosen at training on data carved from the
training set; :class:`OperatingPoint` reads it, with 0.5 / 0.5 for models whose manifest has none and an
explicit setting (``[video]``, ``--threshold``) overriding it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clinical.litert import ModelError, ModelRunner
from wire.model_manifest import Manifest, ManifestError, load_public_key, verify_model_dir

MODEL_NAME = "endoscopy-seg"


def load_verified(model_dir: Path, trusted_keys: Sequence[Path], threads: int = 1) -> tuple[ModelRunner, Manifest]:
    """Verify the signed manifest and open the model; raises ManifestError or ModelError."""
    keys = [load_public_key(k) for k in trusted_keys]
    manifest = verify_model_dir(model_dir, keys)
    if manifest.name != MODEL_NAME:
        raise ManifestError(f"{model_dir}: manifest names {manifest.name!r}, expected {MODEL_NAME!r}")
    return ModelRunner(model_dir / "model.tflite", manifest=manifest, num_threads=threads), manifest


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Any image -> ``width`` x ``height``, anti-aliased like a box filter (``INTER_AREA``).

    OpenCV's ``INTER_AREA`` at a fractional ratio (720p -> 256 x 256 is 5 x 2.81) takes 3.5-4 ms a frame
    on this gateway's cores, as long as the model's whole invoke. An image at least twice the target in
    both directions is therefore first resampled bilinearly to exactly twice the target, then halved
    with ``INTER_AREA``'s 2 x 2 fast path: 0.5-0.6 ms, within 0.15 grey levels (mean, of 255) of the
    one-step box filter on the demo clip's 720p frames (docs/endoscopy.md, "Frame preprocessing").
    Smaller images take the one-step box filter, and an image already at the target is returned as is.
    """
    import cv2

    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if w >= 2 * width and h >= 2 * height:
        image = cv2.resize(image, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def preprocess(image_bgr: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """BGR frame of any size -> (1, H, W, 3) float32 RGB in [0, 1] at the model's input size."""
    import cv2

    h, w = size
    rgb = cv2.cvtColor(shrink(image_bgr, w, h), cv2.COLOR_BGR2RGB)
    if out is None:
        out = np.empty((1, h, w, 3), np.float32)
    np.multiply(rgb, np.float32(1.0 / 255.0), out=out[0], casting="unsafe")
    return out


@dataclass(frozen=True, slots=True)
class OutputRoles:
    """Which of a model's outputs is the probability map and which (if any) the presence score."""

    prob: int
    present: int | None

    @classmethod
    def of(cls, runner: ModelRunner) -> OutputRoles:
        shapes = runner.output_shapes
        maps = [i for i, s in enumerate(shapes) if len(s) == 3 and s[-1] == 1]
        scores = [i for i, s in enumerate(shapes) if s in ((1,), ())]
        if len(maps) != 1 or len(scores) > 1 or len(maps) + len(scores) != len(shapes):
            raise ModelError(f"{runner.path}: outputs {shapes}: expected one (h, w, 1) map and at most one (1,) score")
        return cls(maps[0], scores[0] if scores else None)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Pixel threshold of the probability map and threshold of the presence score."""

    threshold: float = 0.5
    presence_threshold: float = 0.5

    @classmethod
    def of(cls, manifest: Manifest | None, threshold: float | None = None,
           presence_threshold: float | None = None) -> OperatingPoint:
        """The explicit values, else the manifest's ``thresholds``, else 0.5; each must lie in (0, 1)."""
        stored = manifest.thresholds if manifest is not None else {}
        t = threshold if threshold is not None else stored.get("threshold", 0.5)
        p = presence_threshold if presence_threshold is not None else stored.get("presence", 0.5)
        for name, v in (("threshold", t), ("presence threshold", p)):
            if not 0.0 < float(v) < 1.0:
                raise ModelError(f"{name} {v!r} is not within (0, 1)")
        return cls(float(t), float(p))


@dataclass(frozen=True, slots=True)
class SegOutput:
    prob: np.ndarray  # (N, h, w) polyp probability per pixel
    present: np.ndarray | None  # (N,) probability that the frame holds a polyp; None for 1.x models


def infer(runner: ModelRunner, batch: np.ndarray, roles: OutputRoles | None = None) -> SegOutput:
    """Both outputs for a preprocessed batch (``roles`` computed once by the caller, or here)."""
    roles = roles or OutputRoles.of(runner)
    outs = runner.run(batch)
    prob = np.asarray(outs[roles.prob][..., 0], dtype=np.float32)
    present = None if roles.present is None else np.asarray(outs[roles.present], np.float32).reshape(len(prob))
    return SegOutput(prob, present)


def probability_map(runner: ModelRunner, batch: np.ndarray) -> np.ndarray:
    """(N, h, w) polyp probabilities for a preprocessed batch."""
    return infer(runner, batch).prob
