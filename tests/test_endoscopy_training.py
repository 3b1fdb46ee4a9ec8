"""Training code: a tiny real run (few frames, 1 epoch, tiny input) yields a model ModelRunner loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clinical.litert import ModelRunner
from cloud.training.endoscopy_seg import TrainConfig, build_model, learning_rate, load_frames, read_names, train


def test_learning_rate_schedule() -> None:
    assert learning_rate(1e-3, 0.0, warmup=0.1) == pytest.approx(1e-4)
    assert learning_rate(1e-3, 0.1, warmup=0.1) == pytest.approx(1e-3)
    assert learning_rate(1e-3, 1.0, warmup=0.1) == pytest.approx(2e-5)
    lrs = [learning_rate(1e-3, p / 10, warmup=0.1) for p in range(1, 11)]
    assert lrs == sorted(lrs, reverse=True)


def test_model_output_is_half_resolution() -> None:
    m = build_model(64, width=4)
    assert tuple(m.outputs[0].shape) == (None, 32, 32, 1)


def test_load_frames_binarises_masks(kvasir: Path) -> None:
    names = read_names(kvasir / "train.txt")[:3]
    xs, ys = load_frames(kvasir, names, 64)
    assert xs.shape == (3, 64, 64, 3) and xs.dtype == np.uint8
    assert set(np.unique(ys)) <= {0, 1} and ys.any()
    assert not set(names) & set(read_names(kvasir / "val.txt"))  # the split never overlaps


def test_tiny_training_run_produces_loadable_int8_model(kvasir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(data_dir=kvasir, epochs=1, batch_size=4, input_size=64, width=4, limit=4, log=lambda _: None)
    res = train(cfg)
    assert res.epochs_run == 1 and len(res.history) == 1 and np.isfinite(res.history[0]["loss"])
    path = tmp_path / "model.tflite"
    path.write_bytes(res.tflite)
    runner = ModelRunner(path)
    assert runner.input_shape == (64, 64, 3) and runner.input_dtype == np.int8
    (out,) = runner.run(np.random.default_rng(0).random((3, 64, 64, 3), dtype=np.float32))
    assert out.shape == (3, 32, 32, 1) and out.dtype == np.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
