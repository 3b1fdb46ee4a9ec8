"""Warm start for vitals-anomaly 2.x: the active model's own weights, read back from its .tflite.

A retrain of a 2.x fleet fine-tunes the model the fleet runs rather than training a new one from
nothing: the active model's synthetic training (cloud/training/vitals_anomaly2.py ``train_on_ward``) is
the PRE-TRAINING, the fleet's windows and labels the fine-tuning. The weights come from the one artefact
every deployment has, the active model folder's ``model.tflite`` (a retrained candidate has no Keras file
beside it either), through LiteRT:

- the converter keeps the layers' kernels and biases as constant tensors; Conv1D kernels become
  (out, 1, k, in) Conv2D filters, Dense kernels (out, in) matrices; the Platt calibration is folded into
  the last layer, so its weights are the CALIBRATED logit's (a * w, a * c + b): the fine-tuning starts from
  that logit and is calibrated again on the validation patients afterwards;
- which constant is which layer's is decided by shape and then VERIFIED: every assignment consistent
  with the shapes is tried (the converter's tensor names are a hint for the order, not a contract), and
  one is used only if the rebuilt Keras network reproduces the .tflite's LOGITS on probe inputs of
  several scales (``TOLERANCE``; compared as logits where the probability is not saturated, because two
  wrong assignments can agree on saturated probabilities); otherwise :class:`WarmStartError` says why, and
  the caller states a cold start.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from clinical.features import WINDOW
from clinical.model_input import n_channels

TOLERANCE = 1e-3  # max |logit difference| (plus as much relative) between the rebuilt network and the .tflite
PROBES = 96


class WarmStartError(Exception):
    """The active model's weights cannot be taken over (another architecture, or no exact match)."""


def _constants(model_path: Path) -> tuple[list[tuple[str, np.ndarray]], Any]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model_path))
    it.allocate_tensors()
    out: list[tuple[str, np.ndarray]] = []
    for d in it.get_tensor_details():
        if d["dtype"] is not np.float32 or d["name"].startswith("serving_default"):
            continue
        try:
            out.append((str(d["name"]), np.array(it.get_tensor(d["index"]))))
        except ValueError:  # an activation, not a constant
            continue
    return out, it


def _probe_outputs(it: Any, x: np.ndarray) -> np.ndarray:
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    return np.asarray(it.get_tensor(outp["index"]))[:, 0]


def _layers(model: Any) -> tuple[list[Any], Any, Any]:
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv1D"]
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    if len(convs) != 3 or len(dense) != 2:
        raise WarmStartError(f"expected 3 Conv1D and 2 Dense layers, the network has {len(convs)} and {len(dense)}")
    return convs, dense[0], dense[1]


def load_active_weights(model: Any, active_dir: Path, seed: int = 0) -> dict[str, Any]:
    """Set ``model``'s weights (``vitals_anomaly2.build_model``: logit output) to the active model's,
    calibration folded into the logit layer. Returns what was done; raises :class:`WarmStartError`."""
    consts, it = _constants(Path(active_dir) / "model.tflite")
    convs, hidden, logit = _layers(model)
    width = int(convs[0].filters)
    ch = n_channels("baseline")
    k = int(convs[0].kernel_size[0])

    def by_shape(shape: tuple[int, ...], hint: str = "") -> list[tuple[str, np.ndarray]]:
        """Constants of that shape, those whose name carries ``hint`` first (folded activations of a batch of
        one can have a weight's shape too: they are candidates, and the verification rules them out)."""
        return sorted([c for c in consts if c[1].shape == shape], key=lambda c: (hint not in c[0], c[0]))

    first = by_shape((width, 1, k, ch))
    later = by_shape((width, 1, k, width))
    h_kernel = by_shape((16, 2 * width), "MatMul")
    o_kernel = by_shape((1, 16), "MatMul")
    o_bias = by_shape((1,))
    biases = by_shape((width,), "Bias")
    if len(first) != 1 or len(later) < 2 or not h_kernel or not o_kernel or not o_bias or len(biases) < 4:
        raise WarmStartError("the active model's constants do not fit this network (another architecture)")
    rng = np.random.default_rng(seed)
    scale = np.repeat([0.1, 0.3, 1.0], PROBES // 3)[:, None, None]
    x = (rng.normal(0.0, 1.0, (len(scale), WINDOW, ch)) * scale).astype(np.float32)
    p = _probe_outputs(it, x).astype(np.float64)
    live = (p > 1e-30) & (p < 1.0 - 1e-4)  # float32 keeps a small probability exact, not one close to 1
    if live.sum() < len(p) // 4:
        raise WarmStartError("the active model's outputs on the probes are saturated: cannot verify its weights")
    want = np.log(p[live] / (1.0 - p[live]))
    tried = 0
    combos = itertools.product(itertools.permutations([c[1] for c in later], 2),
                               itertools.permutations([c[1] for c in biases], 4),
                               (c[1] for c in h_kernel), (c[1] for c in o_kernel), (c[1] for c in o_bias))
    for (k2, k3), (b1, b2, b3, bh), hk, ok, ob in combos:
        tried += 1
        for layer, kern, bias in zip(convs, (first[0][1], k2, k3), (b1, b2, b3), strict=True):
            layer.set_weights([kern[:, 0].transpose(1, 2, 0), bias])
        hidden.set_weights([hk.T, bh])
        logit.set_weights([ok.T, ob])
        z = np.asarray(model(x, training=False), np.float64)[:, 0][live]
        err = float(np.max(np.abs(z - want) / (1.0 + np.abs(want))))
        if err <= TOLERANCE:
            return {"start": f"warm start from the active model ({Path(active_dir).name})",
                    "warm_start_max_logit_diff": round(err, 6), "warm_start_assignments_tried": tried}
    raise WarmStartError(f"no assignment of the active model's {len(consts)} constants reproduces its outputs "
                         f"({tried} tried)")
