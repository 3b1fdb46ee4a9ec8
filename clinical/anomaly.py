"""The vitals-anomaly model on the gateway: one batched LiteRT invoke for every bed that has a new window.

The model (cloud/training/vitals_anomaly.py, vitals_anomaly2.py) reads an input built from a window of
WINDOW one-minute buckets (normalised HR, SpO2, resp rate, systolic NIBP, temperature, then their 0/1
availability masks; clinical/features.py) by the one input builder (clinical/model_input.py: the window
as is for 1.x, window + deviation from the patient's own baseline for 2.x, named by the manifest's
``features.input``) and outputs the probability that the patient is deteriorating. Its alarm
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
from clinical.model_input import build, explain, n_channels
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
            self.input_kind = check_manifest_spec(manifest.features).input
        except ValueError as exc:
            raise ModelError(f"{model_dir}: {exc}") from None
        ch = n_channels(self.input_kind)
        self.manifest = manifest
        self.model_dir = model_dir
        self.version = manifest.version
        self.runner = ModelRunner(model_dir / "model.tflite", manifest, num_threads)
        if self.runner.input_shape != (WINDOW, ch):
            raise ModelError(f"{model_dir}: input {self.runner.input_shape} != ({WINDOW}, {ch})")
        thr = manifest.metrics.get("threshold")
        if not isinstance(thr, float | int) or not 0.0 < float(thr) < 1.0:
            raise ModelError(f"{model_dir}: manifest metrics.threshold missing or not in (0, 1)")
        self.threshold = float(thr)
        mb = manifest.metrics.get("min_buckets", 10)
        self.min_buckets = int(mb) if isinstance(mb, int | float) else 10
        self._buf = np.zeros((8, WINDOW, ch), np.float32)
        self._win = np.zeros((WINDOW, N_FEATURES), np.float32)
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
            grown = np.zeros((1 << (n - 1).bit_length(), WINDOW, self._buf.shape[2]), np.float32)
            self._buf = grown
        self._alloc = max(self._alloc, 1 << (n - 1).bit_length())
        kind = self.input_kind
        for k, b in enumerate(beds):
            if kind == "window":
                b.window(self._buf[k])
            else:
                b.window(self._win)
                build(kind, self._win, b.baseline, self._buf[k])
        self.invokes += 1
        out = self.runner.run(self._buf[: self._alloc])[0]
        return out.reshape(self._alloc, -1)[:n, 0]

    def explain(self, k: int) -> str:
        """Why bed ``k`` of the last :meth:`score` call scored as it did (parameters against the baseline)."""
        return explain(self.input_kind, self._buf[k])

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        if len(windows) == 0:
            return np.zeros(0, np.float32)
        self.invokes += 1
        out = self.runner.run(np.asarray(windows, np.float32))[0]
        return out.reshape(len(windows), -1)[:, 0]
