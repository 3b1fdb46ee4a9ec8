"""The vitals-anomaly model on the gateway: one batched LiteRT invoke for every bed that has a new window.

The model (cloud/training/vitals_anomaly.py) reads a window of WINDOW one-minute
buckets x N_FEATURES channels (normalised HR, SpO2, resp rate, systolic NIBP,
temperature, then their 0/1 availability masks; see clinical/bedstate.py) and
outputs the probability that the patient is deteriorating. Its alarm
threshold and the minimum history it needs are in the manifest's metrics
(``threshold``, ``min_buckets``), chosen on validation scenarios at training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import msgspec
import numpy as np

from clinical.bedstate import BedState
from clinical.features import N_FEATURES, WINDOW, check_manifest_spec
from clinical.litert import ModelError, ModelRunner
from wire.model_manifest import Manifest, ManifestError, load_public_key, verify_model_dir

MODEL_NAME = "vitals-anomaly"


class AnomalyScorer(Protocol):
    threshold: float
    min_buckets: int

    def score(self, beds: Sequence[BedState]) -> np.ndarray: ...


class VitalsAnomalyModel:
    """Scores beds with the shipped .tflite through the one LiteRT wrapper (clinical/litert.py)."""

    def __init__(self, model_dir: Path, num_threads: int = 1, trusted_keys: Sequence[Path] = ()) -> None:
        model_dir = Path(model_dir)
        if trusted_keys:
            manifest = verify_model_dir(model_dir, [load_public_key(Path(k)) for k in trusted_keys])
        else:
            try:
                manifest = msgspec.json.decode((model_dir / "manifest.json").read_bytes(), type=Manifest)
            except (OSError, msgspec.DecodeError) as exc:
                raise ManifestError(f"{model_dir}: cannot read manifest.json: {exc}") from None
        if manifest.name != MODEL_NAME:
            raise ModelError(f"{model_dir}: manifest names {manifest.name!r}, expected {MODEL_NAME!r}")
        try:  # the gateway must compute exactly the input the model was trained on
            check_manifest_spec(manifest.features)
        except ValueError as exc:
            raise ModelError(f"{model_dir}: {exc}") from None
        self.manifest = manifest
        self.model_dir = model_dir
        self.version = manifest.version
        self.runner = ModelRunner(model_dir / "model.tflite", manifest, num_threads)
        if self.runner.input_shape != (WINDOW, N_FEATURES):
            raise ModelError(f"{model_dir}: input {self.runner.input_shape} != ({WINDOW}, {N_FEATURES})")
        thr = manifest.metrics.get("threshold")
        if not isinstance(thr, float | int) or not 0.0 < float(thr) < 1.0:
            raise ModelError(f"{model_dir}: manifest metrics.threshold missing or not in (0, 1)")
        self.threshold = float(thr)
        mb = manifest.metrics.get("min_buckets", 10)
        self.min_buckets = int(mb) if isinstance(mb, int | float) else 10
        self._buf = np.zeros((8, WINDOW, N_FEATURES), np.float32)
        self._alloc = 8
        self.invokes = 0
        self.runner.run(self._buf)  # warm up: the interpreter's first allocation happens here, not in a tick

    def score(self, beds: Sequence[BedState]) -> np.ndarray:
        """One invoke for all ``beds``; returns one probability per bed.

        The invoke always covers the largest batch seen so far (a power of two): switching the
        interpreter between batch sizes reallocates its tensors (ms each time), running a few spare
        rows costs microseconds.
        """
        n = len(beds)
        if n == 0:
            return np.zeros(0, np.float32)
        if n > len(self._buf):
            grown = np.zeros((1 << (n - 1).bit_length(), WINDOW, N_FEATURES), np.float32)
            self._buf = grown
        self._alloc = max(self._alloc, 1 << (n - 1).bit_length())
        for k, b in enumerate(beds):
            b.window(self._buf[k])
        self.invokes += 1
        out = self.runner.run(self._buf[: self._alloc])[0]
        return out.reshape(self._alloc, -1)[:n, 0]

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        if len(windows) == 0:
            return np.zeros(0, np.float32)
        self.invokes += 1
        out = self.runner.run(np.asarray(windows, np.float32))[0]
        return out.reshape(len(windows), -1)[:, 0]
