"""The endoscopy-seg 2.x network: the 1.x U-Net grown with context, attention, deep supervision and a
frame-level "polyp present" head, warm-started from the shipped 1.x model.

Layout (256 px input, 128 px output, ``width`` = 16):

- U-Net trunk, as 1.x: stride-2 stem, five levels of two 3x3 convolutions (16/32/64/96/128 channels,
  128 down to 8 px), bilinear up-sampling and two 3x3 convolutions per decoder level. Its 20
  convolutions are named ``u00`` .. ``u19`` in 1.x order, so they can take the 1.x weights.
- Deeper encoder: ``CONTEXT_DILATIONS`` depthwise-separable residual blocks at the 8 px bottleneck
  (dilated 3x3 depthwise, 1x1 projection), the projection starting at zero so a block starts as the
  identity; no BatchNorm anywhere (see ``context_block``).
- Attention gates on the four skip connections: ``skip * 2 * sigmoid(psi(relu(Wx skip + Wg up)))`` with
  ``psi`` starting at zero, i.e. the gate starts fully open (identity) and learns to suppress.
- Deep supervision: 1x1 sigmoid heads on the 64 px and 32 px decoder levels (``aux64``, ``aux32``;
  training only).
- ``present``: probability that the frame holds a polyp, from global average and max pooling of the
  bottleneck and max pooling of the last decoder features (dense 64 -> 1).

Warm start (``load_1x_weights``): the 1.x int8 file's convolution weights and biases dequantised
(its BatchNorm is already folded into them), so before any training the grown network computes the
1.x polyp map (up to int8 rounding); the new parts are then trained with the 2.x data.

``export_model`` keeps ``polyp`` and ``present`` only: two int8 outputs, told apart by shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MULT = (1, 2, 4, 6, 8)
CONTEXT_DILATIONS = (2, 4)
TRUNK_CONVS = 20


class WarmStartError(ValueError):
    pass


def _conv(x: Any, ch: int, k: int, name: str, stride: int = 1, relu: bool = True) -> Any:
    from keras import layers

    return layers.Conv2D(ch, k, strides=stride, padding="same", activation="relu" if relu else None, name=name)(x)


def context_block(x: Any, dilation: int, name: str) -> Any:
    """Residual depthwise-separable block starting as the identity (zero-initialised projection).

    No BatchNorm: the warm-started trunk has none (1.x folded it), and a BatchNorm's moving statistics
    lag its batch statistics for hundreds of steps after a warm start, so inference-mode outputs (what
    ships and what model selection sees) differ wildly from training-mode ones early on.
    """
    from keras import layers

    ch = int(x.shape[-1])
    y = layers.DepthwiseConv2D(3, padding="same", dilation_rate=dilation, name=f"{name}_dw")(x)
    y = layers.ReLU()(y)
    y = layers.Conv2D(ch, 1, kernel_initializer="zeros", name=f"{name}_pw")(y)
    return layers.ReLU()(layers.Add()([x, y]))


def attention_gate(skip: Any, gate: Any, name: str) -> Any:
    """Additive attention gate, open (identity) at initialisation."""
    from keras import layers

    inter = max(8, int(skip.shape[-1]) // 2)
    a = layers.Conv2D(inter, 1, use_bias=False, name=f"{name}_x")(skip)
    b = layers.Conv2D(inter, 1, name=f"{name}_g")(gate)
    s = layers.ReLU()(layers.Add()([a, b]))
    psi = layers.Conv2D(1, 1, kernel_initializer="zeros", bias_initializer="zeros", name=f"{name}_psi")(s)
    alpha = layers.Rescaling(2.0)(layers.Activation("sigmoid")(psi))
    return layers.Multiply()([skip, alpha])


def build_training_model(input_size: int = 256, width: int = 16) -> Any:
    """Keras model with outputs polyp (s/2), aux64 (s/4), aux32 (s/8) and present (N, 1)."""
    import keras
    from keras import layers

    n = iter(range(TRUNK_CONVS))
    inp = keras.Input((input_size, input_size, 3), name="frame")
    x = _conv(inp, width, 3, f"u{next(n):02d}", stride=2)
    skips = []
    for i, m in enumerate(MULT):
        if i > 0:
            x = layers.MaxPooling2D(2)(x)
        x = _conv(x, width * m, 3, f"u{next(n):02d}")
        x = _conv(x, width * m, 3, f"u{next(n):02d}")
        skips.append(x)
    for d in CONTEXT_DILATIONS:
        x = context_block(x, d, f"ctx{d}")
    deep = x
    feats = []
    for m, skip in zip(reversed(MULT[:-1]), reversed(skips[:-1]), strict=True):
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        gated = attention_gate(skip, x, f"att{m}")
        x = layers.Concatenate()([x, gated])
        x = _conv(x, width * m, 3, f"u{next(n):02d}")
        x = _conv(x, width * m, 3, f"u{next(n):02d}")
        feats.append(x)
    polyp = layers.Conv2D(1, 1, activation="sigmoid", name=f"u{next(n):02d}")(x)
    polyp = layers.Identity(name="polyp")(polyp)
    aux64 = layers.Conv2D(1, 1, activation="sigmoid", name="aux64")(feats[-2])
    aux32 = layers.Conv2D(1, 1, activation="sigmoid", name="aux32")(feats[-3])
    pooled = layers.Concatenate()([
        layers.GlobalAveragePooling2D()(deep), layers.GlobalMaxPooling2D()(deep),
        layers.GlobalMaxPooling2D()(layers.Conv2D(16, 1, activation="relu", name="present_feat")(x)),
    ])
    h = layers.Dropout(0.2)(layers.Dense(64, activation="relu", name="present_hidden")(pooled))
    present = layers.Dense(1, activation="sigmoid", name="present")(h)
    return keras.Model(inp, {"polyp": polyp, "aux64": aux64, "aux32": aux32, "present": present},
                       name="endoscopy_seg_v2")


def export_model(training_model: Any) -> Any:
    """The shipped graph: the same weights, outputs polyp and present only."""
    import keras

    out = training_model.output
    return keras.Model(training_model.input, [out["polyp"], out["present"]], name="endoscopy_seg_v2_export")


def read_int8_convs(tflite: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel kh x kw x in x out, bias) of every CONV_2D of an int8 .tflite, dequantised, in graph order."""
    from clinical.litert import _interpreter_class

    interp = _interpreter_class()(model_path=str(tflite))
    interp.allocate_tensors()
    details = {t["index"]: t for t in interp.get_tensor_details()}

    def deq(idx: int, axis_last: bool) -> np.ndarray:
        q = details[idx]["quantization_parameters"]
        raw: np.ndarray = np.asarray(interp.get_tensor(idx), np.float32)
        scales, zps = np.asarray(q["scales"], np.float32), np.asarray(q["zero_points"], np.float32)
        if scales.size == 0:
            return raw
        shape = (-1,) + (1,) * (raw.ndim - 1) if not axis_last else (-1,)
        return np.asarray((raw - zps.reshape(shape)) * scales.reshape(shape), np.float32)

    out = []
    for op in interp._get_ops_details():
        if op["op_name"] != "CONV_2D":
            continue
        w = deq(int(op["inputs"][1]), axis_last=False)  # (out, kh, kw, in)
        b = deq(int(op["inputs"][2]), axis_last=True)
        out.append((np.transpose(w, (1, 2, 3, 0)), b))
    return out


def load_1x_weights(model: Any, tflite: Path) -> int:
    """Copy the 1.x trunk's dequantised weights into ``u00`` .. ``u19``; returns the layers loaded."""
    convs = read_int8_convs(tflite)
    if len(convs) != TRUNK_CONVS:
        raise WarmStartError(f"{tflite}: {len(convs)} convolutions, expected the 1.x U-Net's {TRUNK_CONVS}")
    for i, (kernel, bias) in enumerate(convs):
        layer = model.get_layer(f"u{i:02d}")
        want = tuple(layer.kernel.shape)
        if kernel.shape != want:
            raise WarmStartError(f"{tflite}: convolution {i} is {kernel.shape}, the network wants {want}")
        layer.set_weights([kernel, bias])
    return len(convs)
