"""endoscopy-seg with an ImageNet-pretrained EfficientNet-Lite0 encoder (``--encoder lite0``).

Layout (256 px input, 128 px output):

- ``lite0_norm``: the input in [0, 1] (RGB / 255, what ships: int8 with scale 1/255) mapped to Lite0's
  ``(255 x - 127) / 128`` inside the graph, so the model's input contract and the gateway's
  preprocessing are those of every other endoscopy-seg version.
- Encoder: EfficientNet-Lite0 up to ``STOP`` (stride 16, blocks 0-10, 112 channels at 16 x 16;
  cloud.training.endoscopy_pretrained), started from the ImageNet weights. Its BatchNorm layers stay in
  inference mode with their ImageNet statistics (frozen): with batches of 8 the batch statistics would
  be noisy, and moving statistics that lag the batch ones make the inference-mode map (what is selected
  on and what ships) differ from the trained one (see endoscopy_net.context_block). The convolutions of
  strides 8 and 16 train; those of strides 2 and 4 (stem, blocks 0-2: generic edges and colours) keep
  their ImageNet weights (``FROZEN_STRIDE``), which makes a training step about 35 % cheaper here.
- Decoder: per level (``DECODER``: stride, channels), bilinear x2 up-sampling, concatenation with the
  encoder's feature at that stride, a 1x1 fusing convolution and one or two depthwise-separable 3x3
  convolutions, ReLU, no BatchNorm; the map (sigmoid) at stride 2, i.e. 128 x 128. The stride-2 level
  is kept narrow (16 channels): at 128 x 128 it costs most per channel.
- Deep supervision ``aux64`` / ``aux32`` (training only) and the ``present`` head as in endoscopy_net:
  global average and max pooling of the deepest feature and max pooling of the last decoder features.

``export_model`` keeps ``polyp`` and ``present``: the same two int8 outputs as every 2.x model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .endoscopy_pretrained import LITE0_OFFSET, LITE0_SCALE, layers_up_to, lite0_encoder, load_lite0

PREFIX = "l0_"
# (stride, channels, depthwise-separable 3x3 convolutions) from deep to shallow
STOP = 16  # the encoder ends at stride 16 (blocks 0-10): the stride-32 blocks cost 25-30 % more per frame
FROZEN_STRIDE = 4  # stem and blocks 0-2 (strides 2 and 4) keep their ImageNet weights: 35 % faster steps
FROZEN_STRIDES = (0, 2, 4, 8)  # what ``frozen_stride`` may be: 0 trains every convolution
DECODER: tuple[tuple[int, int, int], ...] = ((16, 96, 2), (8, 64, 2), (4, 32, 1), (2, 16, 1))


def build_lite0_training_model(input_size: int = 256, weights: Path | dict[str, Any] | None = None,
                               stop: int = STOP, decoder: tuple[tuple[int, int, int], ...] = DECODER,
                               frozen_stride: int = FROZEN_STRIDE) -> Any:
    """Keras model with outputs polyp (s/2), aux64 (s/4), aux32 (s/8) and present (N, 1). ``weights``:
    the Lite0 .pth (or its state dict); None leaves the encoder at random initialisation (tests)."""
    import keras
    from keras import layers

    inp = keras.Input((input_size, input_size, 3), name="frame")
    x = layers.Rescaling(LITE0_SCALE, offset=LITE0_OFFSET, name="lite0_norm")(inp)
    feats = lite0_encoder(x, PREFIX, stop)
    x = deep = feats[stop]
    dec: dict[int, Any] = {}
    for stride, ch, n_sep in decoder:
        if stride >= stop:
            continue
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = layers.Concatenate()([x, feats[stride]])
        x = layers.Conv2D(ch, 1, activation="relu", name=f"dec{stride}_fuse")(x)
        for j in range(n_sep):
            x = layers.SeparableConv2D(ch, 3, padding="same", activation="relu", name=f"dec{stride}_sep{j}")(x)
        dec[stride] = x
    polyp = layers.Identity(name="polyp")(layers.Conv2D(1, 1, activation="sigmoid", name="dec_out")(x))
    aux64 = layers.Conv2D(1, 1, activation="sigmoid", name="aux64")(dec[4])
    aux32 = layers.Conv2D(1, 1, activation="sigmoid", name="aux32")(dec[8])
    pooled = layers.Concatenate()([
        layers.GlobalAveragePooling2D()(deep), layers.GlobalMaxPooling2D()(deep),
        layers.GlobalMaxPooling2D()(layers.Conv2D(16, 1, activation="relu", name="present_feat")(x)),
    ])
    h = layers.Dropout(0.2)(layers.Dense(64, activation="relu", name="present_hidden")(pooled))
    present = layers.Dense(1, activation="sigmoid", name="present")(h)
    model = keras.Model(inp, {"polyp": polyp, "aux64": aux64, "aux32": aux32, "present": present},
                        name="endoscopy_seg_lite0")
    if weights is not None:
        load_lite0(model, weights, PREFIX)
    frozen = layers_up_to(frozen_stride, PREFIX)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization) or layer.name.startswith(frozen):
            layer.trainable = False  # BatchNorm: inference mode, ImageNet statistics (module docstring)
    return model
