"""The graph that ships for endoscopy-seg 2.x, built from a trained ``endoscopy_net`` model's layers.

- Identity parts stripped: a context block whose 1x1 projection is all zero computes ``relu(x + 0) = x``
  (its input is a ReLU output), and an attention gate whose ``psi`` is all zero multiplies its skip by
  ``2 * sigmoid(0) = 1``; both are exact identities (as in a ``--freeze-map`` model, whose map is the
  1.x one), so they are left out of the exported graph instead of costing time on every frame. Parts
  that trained away from the identity stay.
- Test-time flip (``flip=True``): the frame and its mirror image (left-right) go through the network as
  one batch of two inside the graph; the mirror's map is flipped back and the two maps and the two
  presence scores are averaged. One invoke per frame, as before; about twice the compute.
- ``input_size``: the network is fully convolutional, so the same weights can serve a larger input
  (the map is then ``input_size / 2``).

Deep-supervision heads and dropout are training-only and never exported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .endoscopy_net import CONTEXT_DILATIONS, MULT, TRUNK_CONVS


def _zero(layer: Any) -> bool:
    return all(not np.any(w) for w in layer.get_weights())


def identity_parts(model: Any) -> dict[str, bool]:
    """{"ctx2": True, "att6": False, ...}: which context blocks and attention gates are exact identities."""
    out = {f"ctx{d}": _zero(model.get_layer(f"ctx{d}_pw")) for d in CONTEXT_DILATIONS}
    out.update({f"att{m}": _zero(model.get_layer(f"att{m}_psi")) for m in MULT[:-1]})
    return out


def serving_model(model: Any, flip: bool = False, input_size: int | None = None, strip: bool = True) -> Any:
    """Keras model frame -> [polyp map, present] sharing ``model``'s layers (see the module docstring)."""
    import keras
    from keras import layers

    get = model.get_layer
    size = input_size or int(model.input.shape[1])
    ident = identity_parts(model) if strip else {}
    inp = keras.Input((size, size, 3), name="frame")
    x = FlipPair()(inp) if flip else inp
    n = iter(range(TRUNK_CONVS))
    x = get(f"u{next(n):02d}")(x)
    skips = []
    for i in range(len(MULT)):
        if i > 0:
            x = layers.MaxPooling2D(2)(x)
        x = get(f"u{next(n):02d}")(x)
        x = get(f"u{next(n):02d}")(x)
        skips.append(x)
    for d in CONTEXT_DILATIONS:
        if not ident.get(f"ctx{d}"):
            y = get(f"ctx{d}_pw")(layers.ReLU()(get(f"ctx{d}_dw")(x)))
            x = layers.ReLU()(layers.Add()([x, y]))
    deep = x
    for m, skip in zip(reversed(MULT[:-1]), reversed(skips[:-1]), strict=True):
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        gated = skip
        if not ident.get(f"att{m}"):
            s = layers.ReLU()(layers.Add()([get(f"att{m}_x")(skip), get(f"att{m}_g")(x)]))
            alpha = layers.Rescaling(2.0)(layers.Activation("sigmoid")(get(f"att{m}_psi")(s)))
            gated = layers.Multiply()([skip, alpha])
        x = layers.Concatenate()([x, gated])
        x = get(f"u{next(n):02d}")(x)
        x = get(f"u{next(n):02d}")(x)
    polyp = get(f"u{next(n):02d}")(x)
    pooled = layers.Concatenate()([
        layers.GlobalAveragePooling2D()(deep), layers.GlobalMaxPooling2D()(deep),
        layers.GlobalMaxPooling2D()(get("present_feat")(x)),
    ])
    present = get("present")(get("present_hidden")(pooled))
    if flip:
        polyp, present = FlipMerge()(polyp), PairMean()(present)
    return keras.Model(inp, [polyp, present], name="endoscopy_seg_v2_serving")


def flipped(model: Any) -> Any:
    """``model`` (frame -> [map, presence]) with the test-time flip of ``serving_model(flip=True)`` around it."""
    import keras

    inp = keras.Input(tuple(model.input.shape[1:]), name="frame")
    polyp, present = model(FlipPair()(inp))
    return keras.Model(inp, [FlipMerge()(polyp), PairMean()(present)], name=f"{model.name}_flip")


def _layer_base() -> Any:
    from keras import layers

    return layers.Layer


class FlipPair(_layer_base()):  # type: ignore[misc]
    """(N, h, w, c) -> (2N, h, w, c): the frames, then their left-right mirror images."""

    def call(self, x: Any) -> Any:
        from keras import ops

        return ops.concatenate([x, ops.flip(x, axis=2)], axis=0)


class FlipMerge(_layer_base()):  # type: ignore[misc]
    """(2N, h, w, c) maps of FlipPair's batch -> (N, h, w, c): mean of each map and its mirror flipped back."""

    def call(self, y: Any) -> Any:
        from keras import ops

        n = ops.shape(y)[0] // 2
        return (y[:n] + ops.flip(y[n:], axis=2)) * 0.5


class PairMean(_layer_base()):  # type: ignore[misc]
    """(2N, k) scores of FlipPair's batch -> (N, k): mean of each frame's two scores."""

    def call(self, y: Any) -> Any:
        from keras import ops

        n = ops.shape(y)[0] // 2
        return (y[:n] + y[n:]) * 0.5
