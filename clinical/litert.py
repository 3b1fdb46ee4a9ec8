"""The one wrapper around the TFLite/LiteRT interpreter.

It owns interpreter creation (ai-edge-litert first, tflite_runtime as the
fallback), the thread count, the check of the model's tensors against its
manifest, (de)quantisation, and batching: callers hand one array with a batch
of rows (for example one window per bed) and get one invoke for the lot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wire.model_manifest import Manifest, TensorSpec


class ModelError(RuntimeError):
    pass


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError:
        raise ModelError("neither ai-edge-litert nor tflite-runtime is installed") from None


def tensor_specs(tflite: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The model file's input and output tensors as manifest TensorSpecs (batch dimension -1)."""
    interp = _interpreter_class()(model_path=str(tflite))

    def spec(d: dict[str, Any]) -> TensorSpec:
        scale, zp = d["quantization"]
        shape = [int(x) for x in d["shape"]]
        shape[0] = -1
        return TensorSpec(d["name"], shape, d["dtype"].__name__, float(scale), int(zp))

    return [spec(d) for d in interp.get_input_details()], [spec(d) for d in interp.get_output_details()]


class ModelRunner:
    """Runs one .tflite model. Not thread-safe: one runner per thread."""

    def __init__(self, path: Path, manifest: Manifest | None = None, num_threads: int = 1) -> None:
        self.path = Path(path)
        self.manifest = manifest
        try:
            self._interp = _interpreter_class()(model_path=str(self.path), num_threads=num_threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path}: cannot load model: {exc}") from None
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        if len(self._in) != 1:
            raise ModelError(f"{self.path}: expected one input tensor, found {len(self._in)}")
        self._batch = int(self._in[0]["shape"][0])
        if manifest is not None:
            self._check(manifest)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._in[0]["shape"][1:])

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        """Each output's shape without the batch dimension, in the order ``run`` returns them."""
        return [tuple(int(d) for d in o["shape"][1:]) for o in self._out]

    @property
    def input_dtype(self) -> np.dtype[Any]:
        dtype: np.dtype[Any] = np.dtype(self._in[0]["dtype"])
        return dtype

    def _check(self, m: Manifest) -> None:
        def same(spec: TensorSpec, det: dict[str, Any]) -> bool:
            shape = [int(d) for d in det["shape"]][1:]
            want = [d for d in spec.shape][1:]
            return shape == want and np.dtype(det["dtype"]).name == spec.dtype

        if len(m.inputs) != len(self._in) or len(m.outputs) != len(self._out):
            raise ModelError(f"{self.path}: tensor count differs from manifest")
        for spec, det in zip(m.inputs, self._in, strict=True):
            if not same(spec, det):
                raise ModelError(f"{self.path}: input {det['shape']} {det['dtype']} != manifest {spec}")
        for spec, det in zip(m.outputs, self._out, strict=True):
            if not same(spec, det):
                raise ModelError(f"{self.path}: output {det['shape']} {det['dtype']} != manifest {spec}")

    def _resize(self, n: int) -> None:
        if n != self._batch:
            shape = [n, *self.input_shape]
            self._interp.resize_tensor_input(self._in[0]["index"], shape)
            self._interp.allocate_tensors()
            self._in = self._interp.get_input_details()
            self._out = self._interp.get_output_details()
            self._batch = n

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """One invoke over a batch of float inputs; returns float outputs.

        Batch sizes are rounded up to a power of two (padding rows repeat row 0)
        so that a varying number of beds does not reallocate tensors each call.
        """
        n = int(batch.shape[0])
        if n == 0:
            return [np.zeros((0, *d["shape"][1:]), np.float32) for d in self._out]
        if tuple(batch.shape[1:]) != self.input_shape:
            raise ModelError(f"input shape {batch.shape[1:]} != model {self.input_shape}")
        size = 1 << (n - 1).bit_length()
        if size != n:
            pad = np.repeat(batch[:1], size - n, axis=0)
            batch = np.concatenate([batch, pad], axis=0)
        self._resize(size)
        det = self._in[0]
        self._interp.set_tensor(det["index"], _quantize(batch, det))
        self._interp.invoke()
        outputs: list[np.ndarray] = [_dequantize(self._interp.get_tensor(o["index"]), o)[:n] for o in self._out]
        return outputs


def _quantize(x: np.ndarray, det: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(det["dtype"])
    if dtype == np.float32:
        return x.astype(np.float32, copy=False)
    scale, zp = det["quantization"]
    info = np.iinfo(dtype)
    q = np.round(x / scale + zp)
    out: np.ndarray = np.clip(q, info.min, info.max).astype(dtype)
    return out


def _dequantize(y: np.ndarray, det: dict[str, Any]) -> np.ndarray:
    if np.dtype(det["dtype"]) == np.float32:
        return np.asarray(y, dtype=np.float32)
    scale, zp = det["quantization"]
    out: np.ndarray = ((y.astype(np.float32) - zp) * scale).astype(np.float32)
    return out
