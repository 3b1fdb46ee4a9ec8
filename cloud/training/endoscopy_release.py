"""Packaging a trained endoscopy-seg model: figures on val.txt, manifest, card, signature.

The figures are measured on the held-out ``val.txt`` frames through the
gateway's own ModelRunner and evaluation code (clinical.endoscopy.evaluate), on the
int8 .tflite that ships, never on the Keras model or on training frames.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from clinical.litert import tensor_specs
from wire.model_manifest import Manifest, encode_manifest, load_private_key, sign_model_dir

from .endoscopy_seg import MODEL_NAME, TrainConfig, TrainResult, read_names

CITATION = (
    'Jha D., Smedsrud P. H., Riegler M. A., Halvorsen P., de Lange T., Johansen D., Johansen H. D. '
    '"Kvasir-SEG: A Segmented Polyp Dataset". MultiMedia Modeling (MMM 2020), LNCS 11962, '
    "pp. 451-462, Springer, 2020. doi:10.1007/978-3-030-37734-2_37"
)
TERMS = (
    "Kvasir-SEG (Simula Research Laboratory, Vestre Viken Health Trust) is released for research and "
    "educational use only; any use must cite the paper above. This model is trained on it and inherits "
    "those terms: it is for research and education, not a medical device, and not for clinical decisions."
)


def evaluate_val(tflite: Path, data_dir: Path, threads: int = 2) -> dict[str, Any]:
    from clinical.endoscopy.evaluate import evaluate
    from clinical.litert import ModelRunner

    runner = ModelRunner(tflite, num_threads=threads)
    names = read_names(data_dir / "val.txt")
    res = evaluate(runner, data_dir / "images", data_dir / "masks", names)
    return res.figures()


def write_model_dir(
    out_dir: Path, version: str, cfg: TrainConfig, result: TrainResult, key_path: Path | None
) -> tuple[Path, dict[str, Any]]:
    """models/endoscopy-seg/<version>/ with model.tflite, manifest.json (+ .sig when a key is given), card."""
    model_dir = out_dir / MODEL_NAME / version
    model_dir.mkdir(parents=True, exist_ok=True)
    tflite = model_dir / "model.tflite"
    tflite.write_bytes(result.tflite)
    figures = evaluate_val(tflite, cfg.data_dir, cfg.threads)
    inputs, outputs = tensor_specs(tflite)
    n_train = len(read_names(cfg.data_dir / "train.txt"))
    if cfg.limit:
        n_train = min(n_train, cfg.limit)
    metrics: dict[str, float | int | str | None] = {
        "val_dice": figures["dice"],
        "val_iou": figures["iou"],
        "val_dice_global": figures["dice_global"],
        "val_iou_global": figures["iou_global"],
        "val_sensitivity": figures["sensitivity"],
        "val_n": figures["n"],
        "train_n": n_train,
        "train_seconds": round(result.train_seconds),
        "epochs": result.epochs_run,
        "width": cfg.width,
    }
    manifest = Manifest(
        name=MODEL_NAME, version=version, sha256="", inputs=inputs, outputs=outputs, metrics=metrics,
        training_data="Kvasir-SEG train.txt (256 x 256 copy); figures on val.txt only",
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        notes="U-Net, int8; input RGB float [0,1] 256x256 (quantised by ModelRunner); output polyp "
        "probability 128x128",
    )
    (model_dir / "manifest.json").write_bytes(encode_manifest(manifest))
    (model_dir / "MODEL_CARD.md").write_text(model_card(version, cfg, result, figures, n_train, tflite))
    if key_path is not None:
        sign_model_dir(model_dir, load_private_key(key_path))
    return model_dir, figures


def model_card(
    version: str, cfg: TrainConfig, result: TrainResult, figures: dict[str, Any], n_train: int, tflite: Path
) -> str:
    minutes = result.train_seconds / 60.0
    return f"""# endoscopy-seg {version}

Polyp segmentation for colonoscopy video on the gateway (PulseGate issue 6).
**Research and education only: not a medical device, not for clinical decisions.**

## Model
- Architecture: small U-Net (stride-2 stem, 5 levels of two 3x3 conv + BatchNorm + ReLU, widths
  {cfg.width}/{2 * cfg.width}/{4 * cfg.width}/{6 * cfg.width}/{8 * cfg.width}, bilinear up-sampling, skip
  connections), trained from scratch (no pretrained weights).
- Input: one RGB frame, float32 in [0, 1], {cfg.input_size} x {cfg.input_size} (the tensor is int8;
  ModelRunner quantises). Output: polyp probability, {cfg.input_size // 2} x {cfg.input_size // 2}
  (int8, dequantised by ModelRunner); the edge resizes it to the frame.
- Quantisation: full int8 (weights and activations), calibrated on 64 training frames.
- File: model.tflite, {tflite.stat().st_size / 1e6:.2f} MB.

## Training
- Data: Kvasir-SEG `train.txt`, {n_train} frames (256 x 256 copy in ../shared/data/kvasir-seg).
- Augmentation: flips, 90-degree rotations, random zoom/pan crops (60-100 % of the side),
  brightness/contrast/saturation/hue jitter.
- Loss: binary cross-entropy + soft Dice. Adam, peak learning rate {cfg.learning_rate}, warm-up then cosine
  decay over a fixed schedule of {cfg.epochs} epochs or {cfg.time_budget_s:.0f} s, whichever ends first
  (0 = no time limit).
- Ran {result.epochs_run} epochs, batch {cfg.batch_size}, in **{minutes:.1f} minutes** of training on this
  machine's 2 shared CPU cores (TensorFlow CPU), plus conversion. The shipped model is the last epoch
  of the fixed schedule: no early stopping or checkpoint selection on validation figures.
- Retrain: `pulsegate model train endoscopy-seg --version X.Y.Z --key <private key>` (the defaults are
  this recipe: batch {cfg.batch_size}, learning rate {cfg.learning_rate}, {cfg.time_budget_s:.0f} s).

## Figures (Kvasir-SEG `val.txt` only, never trained on; int8 model through ModelRunner)
| n | Dice (mean per frame) | IoU (mean per frame) | Dice (pooled pixels) | IoU (pooled) | frame sensitivity |
|---|---|---|---|---|---|
| {figures["n"]} | {figures["dice"]} | {figures["iou"]} | {figures["dice_global"]} | {figures["iou_global"]} \
| {figures["sensitivity"]} |

Pixel threshold 0.5; Dice/IoU are computed at the masks' 256 x 256 after resizing the probability
map. A frame counts as detected when post-processing finds a region of at least 0.5 % of the frame
with at least half of its pixels on the true polyp. Every Kvasir-SEG frame holds a polyp, so specificity
cannot be measured on it: frames without polyps (normal mucosa) were never seen in training and false
findings on them are unmeasured here; the gateway's temporal smoothing (a finding needs 3 of 5 frames)
holds back one-frame flickers. Check the model on your own data with
`pulsegate model eval endoscopy-seg --images DIR --masks DIR --json`
(frames with empty masks count as negatives and give specificity).

## Limits
- Trained on 800 still frames at 256 x 256 from one dataset; video from other scopes, light sources,
  or bowel preparations may score lower. Small and flat polyps are the weakest case.
- No pretrained encoder: figures are below published models with ImageNet encoders.

## Dataset citation and terms
{CITATION}

{TERMS}
"""
