"""The EfficientNet-Lite0 encoder option: the torch-free .pth reader, the Keras port's weight loading, and a
tiny lite0 training run (random or synthetic weights: no download, no torch)."""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cloud.training.endoscopy_pretrained import (
    LEGACY_MAGIC,
    CheckpointError,
    block_specs,
    load_lite0,
    read_state_dict,
)


class _Storage:
    def __init__(self, key: str, data: np.ndarray) -> None:
        self.key, self.data = key, data


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return sys.modules["torch._utils"]._rebuild_tensor_v2, self.args


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Modules named like torch's, only so that pickle writes the globals a real .pth holds."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: object) -> None:
        raise AssertionError("never called: the reader maps this name itself")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch", "__qualname__": name}))
    torch._utils = utils  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def _state(torch: types.ModuleType, arrays: dict[str, np.ndarray], transpose: bool = False) -> tuple[
        collections.OrderedDict[str, _Tensor], list[_Storage]]:
    sd: collections.OrderedDict[str, _Tensor] = collections.OrderedDict()
    storages = []
    for i, (name, a) in enumerate(arrays.items()):
        if transpose and a.ndim == 4:  # stored HWIO, viewed OIHW: strides as in the package's converted file
            flat = np.ascontiguousarray(np.transpose(a, (2, 3, 1, 0))).reshape(-1)
            w, ci, co = a.shape[3], a.shape[1], a.shape[0]
            stride = (1, co, w * ci * co, ci * co)
        else:
            flat = np.ascontiguousarray(a).reshape(-1)
            stride = tuple(int(s // a.itemsize) for s in np.ascontiguousarray(a).strides)
        st = _Storage(str(100 + i), flat)
        storages.append(st)
        sd[name] = _Tensor(st, 0, a.shape, stride)
    return sd, storages


def _pickler(f: io.BytesIO, torch: types.ModuleType) -> pickle.Pickler:
    p = pickle.Pickler(f, protocol=2)
    kinds = {np.dtype(np.float32): torch.FloatStorage, np.dtype(np.int64): torch.LongStorage}
    p.persistent_id = lambda o: (  # type: ignore[method-assign]
        ("storage", kinds[o.data.dtype], o.key, "cpu", o.data.size, None) if isinstance(o, _Storage) else None)
    return p


def write_legacy(path: Path, torch: types.ModuleType, arrays: dict[str, np.ndarray], transpose: bool = False) -> None:
    sd, storages = _state(torch, arrays, transpose)
    f = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, f, protocol=2)
    _pickler(f, torch).dump(sd)
    pickle.dump([s.key for s in storages], f, protocol=2)
    for s in storages:
        f.write(np.int64(s.data.size).tobytes() + s.data.astype(s.data.dtype.newbyteorder("<")).tobytes())
    path.write_bytes(f.getvalue())


def write_zip(path: Path, torch: types.ModuleType, arrays: dict[str, np.ndarray]) -> None:
    sd, storages = _state(torch, arrays)
    f = io.BytesIO()
    _pickler(f, torch).dump(sd)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", f.getvalue())
        for s in storages:
            z.writestr(f"archive/data/{s.key}", s.data.tobytes())


def lite0_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A state dict with EfficientNet-Lite0's names and shapes (no head), random values."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}

    def bn(key: str, c: int) -> None:
        out[f"{key}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        out[f"{key}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
        out[f"{key}.running_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
        out[f"{key}.running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        out[f"{key}.num_batches_tracked"] = np.array(0, np.int64)

    def conv(key: str, shape: tuple[int, ...]) -> None:
        out[key] = rng.normal(0, 0.2, shape).astype(np.float32)

    conv("_conv_stem.weight", (32, 3, 3, 3))
    bn("_bn0", 32)
    for i, (k, _, e, cin, cout) in enumerate(block_specs()):
        b = f"_blocks.{i}."
        if e != 1:
            conv(f"{b}_expand_conv.weight", (cin * e, cin, 1, 1))
            bn(f"{b}_bn0", cin * e)
        conv(f"{b}_depthwise_conv.weight", (cin * e, 1, k, k))
        bn(f"{b}_bn1", cin * e)
        conv(f"{b}_project_conv.weight", (cout, cin * e, 1, 1))
        bn(f"{b}_bn2", cout)
    return out


def test_reader_reads_both_formats_and_strided_views(fake_torch: types.ModuleType, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = {"w": rng.normal(size=(4, 3, 2, 5)).astype(np.float32), "b": np.arange(4, dtype=np.float32),
              "n": np.array(7, np.int64)}
    write_legacy(tmp_path / "legacy.pth", fake_torch, arrays, transpose=True)
    write_zip(tmp_path / "zip.pth", fake_torch, arrays)
    for name in ("legacy.pth", "zip.pth"):
        got = read_state_dict(tmp_path / name)
        assert set(got) == set(arrays)
        for k, a in arrays.items():
            assert got[k].dtype == a.dtype and np.array_equal(got[k], a), (name, k)


def test_reader_refuses_code_and_truncation(fake_torch: types.ModuleType, tmp_path: Path) -> None:
    import os

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return os.getcwd, ()

    f = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {}):
        pickle.dump(header, f, protocol=2)
    pickle.dump({"x": Evil()}, f, protocol=2)
    (tmp_path / "evil.pth").write_bytes(f.getvalue())
    with pytest.raises(CheckpointError, match=r"refers to (posix|os)\.getcwd"):
        read_state_dict(tmp_path / "evil.pth")
    write_legacy(tmp_path / "ok.pth", fake_torch, {"w": np.ones((8, 8), np.float32)})
    (tmp_path / "short.pth").write_bytes((tmp_path / "ok.pth").read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        read_state_dict(tmp_path / "short.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        read_state_dict(tmp_path / "junk.pth")


def test_lite0_weights_land_in_the_keras_layers(fake_torch: types.ModuleType, tmp_path: Path) -> None:
    from cloud.training.endoscopy_lite0 import build_lite0_training_model

    arrays = lite0_arrays()
    write_legacy(tmp_path / "lite0.pth", fake_torch, arrays, transpose=True)
    m = build_lite0_training_model(64, tmp_path / "lite0.pth")
    shapes = {k: tuple(v.shape) for k, v in m.output.items()}
    assert shapes == {"polyp": (None, 32, 32, 1), "aux64": (None, 16, 16, 1), "aux32": (None, 8, 8, 1),
                      "present": (None, 1)}
    kernel = m.get_layer("l0_b03_dw").get_weights()[0]  # Keras (kh, kw, c, 1) <- torch (c, 1, kh, kw)
    assert np.array_equal(kernel, np.transpose(arrays["_blocks.3._depthwise_conv.weight"], (2, 3, 0, 1)))
    proj = m.get_layer("l0_b05_project").get_weights()[0]
    assert np.array_equal(proj, np.transpose(arrays["_blocks.5._project_conv.weight"], (2, 3, 1, 0)))
    bn = m.get_layer("l0_b05_project_bn")
    assert np.array_equal(bn.get_weights()[3], arrays["_blocks.5._bn2.running_var"]) and not bn.trainable
    assert not m.get_layer("l0_stem").trainable and not m.get_layer("l0_b02_dw").trainable  # strides <= 4
    assert m.get_layer("l0_b03_dw").trainable
    every = build_lite0_training_model(64, tmp_path / "lite0.pth", frozen_stride=0)
    assert every.get_layer("l0_stem").trainable and every.get_layer("l0_b00_dw").trainable
    assert not every.get_layer("l0_b05_project_bn").trainable  # BatchNorm stays in inference mode
    del arrays["_blocks.7._project_conv.weight"]
    with pytest.raises(CheckpointError, match=r"_blocks\.7\._project_conv\.weight"):
        load_lite0(m, arrays)


def test_tiny_lite0_run_trains_converts_and_packages(kvasir: Path, tmp_path: Path,
                                                     fake_torch: types.ModuleType) -> None:
    from clinical.litert import ModelRunner
    from cloud.training.endoscopy_seg import EncoderError, TrainConfig, best_checkpoint, package_checkpoint, train

    write_legacy(tmp_path / "lite0.pth", fake_torch, lite0_arrays())
    logs: list[str] = []
    ckpt = tmp_path / "run.weights.h5"
    cfg = TrainConfig(data_dir=kvasir, epochs=1, batch_size=4, input_size=64, limit=8, steps_per_epoch=2,
                      mine_at=(), time_budget_s=0, select_n=2, checkpoint=ckpt, encoder="lite0",
                      encoder_weights=tmp_path / "lite0.pth", log=logs.append)
    res = train(cfg)
    assert res.encoder == "lite0" and res.epochs_run == 1 and np.isfinite(res.history[0]["loss"])
    assert any("ImageNet weights from" in m and "lite0.pth" in m for m in logs)
    (tmp_path / "m.tflite").write_bytes(res.tflite)
    runner = ModelRunner(tmp_path / "m.tflite")
    assert runner.input_dtype == np.int8 and sorted(runner.output_shapes) == [(1,), (32, 32, 1)]
    packaged = package_checkpoint(cfg, best_checkpoint(ckpt))  # rebuilt without the .pth, weights from the run
    assert packaged.encoder == "lite0" and packaged.shipped == res.shipped == "epoch 1"
    (tmp_path / "p.tflite").write_bytes(packaged.tflite)
    x = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
    for a, b in zip(runner.run(x), ModelRunner(tmp_path / "p.tflite").run(x), strict=True):
        assert np.abs(a - b).max() <= 0.05  # the same weights (a few int8 steps at most)
    from cloud.training.endoscopy_card import model_card

    figs = {k: {"n": 1, "dice": 0.5, "iou": 0.4, "sensitivity": 1.0, "false_findings_per_frame": 0.0}
            for k in ("val", "negatives", "ood", "ood_val", "shifted")}
    card = model_card("9.9.9", cfg, res, figs, tmp_path / "m.tflite")
    assert "EfficientNet-Lite0 encoder" in card and "--encoder lite0" in card and "Apache License 2.0" in card
    assert "research and educational use" in card and "U-Net trunk" not in card
    with pytest.raises(EncoderError, match="lite0"):
        package_checkpoint(TrainConfig(data_dir=kvasir, input_size=64, log=logs.append), best_checkpoint(ckpt))
    with pytest.raises(EncoderError, match="freeze-map"):
        train(TrainConfig(data_dir=kvasir, encoder="lite0", freeze_map=True, log=logs.append))
    with pytest.raises(EncoderError, match="frozen stride 3"):
        train(TrainConfig(data_dir=kvasir, encoder="lite0", frozen_stride=3, log=logs.append))
    with pytest.raises(EncoderError, match="lite0 only"):
        train(TrainConfig(data_dir=kvasir, frozen_stride=0, log=logs.append))
    # a fine-tune of every convolution from the run's best weights, on the same selection split
    tuned_cfg = dataclasses.replace(cfg, init_weights=best_checkpoint(ckpt), frozen_stride=0, checkpoint=None)
    tuned = train(tuned_cfg)
    assert tuned.select_names == res.select_names and any("warm start: every layer" in m for m in logs)
    card = model_card("9.9.10", tuned_cfg, tuned, figs, tmp_path / "m.tflite")
    assert "every encoder convolution trained" in card and "minutes** of training in all" in card
    assert f"--init-weights {best_checkpoint(ckpt)} --frozen-stride 0" in card and "the same selection split" in card
