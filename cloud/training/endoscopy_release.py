"""Packaging a trained endoscopy-seg model: held-out figures, manifest, model card, signature.

Figures are measured on the int8 .tflite that ships, through the gateway's own ModelRunner and
evaluation code (clinical.endoscopy.evaluate), on data never trained on:

- ``val``: Kvasir-SEG ``val.txt`` (Dice, IoU, frame sensitivity, bootstrap intervals);
- ``negatives``: polyp-free crops of ``val.txt`` frames (false findings per polyp-free frame);
- ``ood``: the out-of-domain proxy, frames at least 700 px wide in the original (other scopes and
  processors), held out of 2.x training (cloud.training.endoscopy_data.ood_split); ``ood_val`` its
  ``val.txt`` part;
- ``shifted``: ``val.txt`` re-rendered as another scope would show it (cloud.training.endoscopy_shift).

Nothing here feeds back into training or thresholds: the figures are reported, not selected on. The
presence threshold stored in the manifest (``thresholds``) is chosen before them, on the selection split
carved from ``train.txt`` (cloud.training.endoscopy_threshold), and the figures are measured at it.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from clinical.litert import tensor_specs
from wire.model_manifest import Manifest, encode_manifest, load_private_key, sign_model_dir

from .endoscopy_card import model_card
from .endoscopy_data import read_names, write_heldout_sets
from .endoscopy_seg import MODEL_NAME, TrainConfig, TrainResult
from .endoscopy_threshold import choose_fewest, choose_presence

ARCHITECTURE = {
    "unet": "U-Net (identity context blocks and gates left out of the graph)",
    "lite0": "EfficientNet-Lite0 encoder to stride 16 (ImageNet-pretrained) with a U-Net decoder",
}


def evaluate_heldout(tflite: Path, data_dir: Path, threads: int = 2,
                     presence_threshold: float = 0.5) -> dict[str, dict[str, Any]]:
    """{"val": ..., "negatives": ..., "ood": ..., "ood_val": ...} figures of one model file."""
    from functools import partial

    from clinical.endoscopy.evaluate import evaluate as evaluate_at
    from clinical.litert import ModelRunner

    evaluate = partial(evaluate_at, presence_threshold=presence_threshold)
    runner = ModelRunner(tflite, num_threads=threads)
    images, masks = data_dir / "images", data_dir / "masks"
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="endoscopy-heldout-") as tmp:
        sets = Path(tmp)
        write_heldout_sets(data_dir, sets)
        out["val"] = evaluate(runner, images, masks, read_names(data_dir / "val.txt")).figures()
        neg = sets / "negatives"
        out["negatives"] = evaluate(runner, neg / "images", neg / "masks").figures()
        out["ood"] = evaluate(runner, images, masks, read_names(sets / "ood.txt")).figures()
        out["ood_val"] = evaluate(runner, images, masks, read_names(sets / "ood_val.txt")).figures()
        out["shifted"] = evaluate(runner, sets / "shifted" / "images", sets / "shifted" / "masks").figures()
    return out


def heldout_metrics(figures: dict[str, dict[str, Any]]) -> dict[str, float | int | str | None]:
    """The manifest's held-out figures (``evaluate_heldout`` output)."""
    val, neg, ood = figures["val"], figures["negatives"], figures["ood"]

    def ci(f: dict[str, Any], key: str) -> str | None:
        v = f.get(key)
        return None if v is None else f"{v[0]}-{v[1]}"

    return {
        "val_dice": val["dice"], "val_iou": val["iou"], "val_dice_global": val["dice_global"],
        "val_iou_global": val["iou_global"], "val_sensitivity": val["sensitivity"], "val_n": val["n"],
        "val_dice_ci95": ci(val, "dice_ci95"), "val_sensitivity_ci95": ci(val, "sensitivity_ci95"),
        "heldout_negatives_n": neg["negatives"], "heldout_false_findings_per_frame": neg["false_findings_per_frame"],
        "heldout_false_findings_ci95": ci(neg, "false_findings_ci95"),
        "ood_n": ood["n"], "ood_dice": ood["dice"], "ood_sensitivity": ood["sensitivity"],
        "shifted_val_dice": figures["shifted"]["dice"], "shifted_val_sensitivity": figures["shifted"]["sensitivity"],
    }


def manifest_metrics(figures: dict[str, dict[str, Any]], cfg: TrainConfig, result: TrainResult) -> dict[
        str, float | int | str | None]:
    return {
        **heldout_metrics(figures),
        "train_n": len(result.train_names), "train_negatives": result.negatives,
        "train_seconds": round(result.train_seconds), "epochs": result.epochs_run, "width": cfg.width,
        "init_from": str(cfg.init_from.parent.name) if cfg.init_from is not None else None,
        "encoder": cfg.encoder,
        "input_size": cfg.input_size,
        "outputs": f"polyp (N,{cfg.input_size // 2},{cfg.input_size // 2},1); present (N,1)",
    }


def write_model_dir(
    out_dir: Path, version: str, cfg: TrainConfig, result: TrainResult, key_path: Path | None
) -> tuple[Path, dict[str, Any]]:
    """models/endoscopy-seg/<version>/ with model.tflite, manifest.json (+ .sig when a key is given), card."""
    model_dir = out_dir / MODEL_NAME / version
    model_dir.mkdir(parents=True, exist_ok=True)
    tflite = model_dir / "model.tflite"
    tflite.write_bytes(result.tflite)
    choice = None
    if result.select_names:
        choice = choose_presence(tflite, cfg.data_dir, result.select_names, cfg.input_size, cfg.seed, cfg.threads,
                                 rule=choose_fewest)
    presence = choice.presence if choice is not None else 0.5
    figures = evaluate_heldout(tflite, cfg.data_dir, cfg.threads, presence)
    inputs, outputs = tensor_specs(tflite)
    manifest = Manifest(
        name=MODEL_NAME, version=version, sha256="", inputs=inputs, outputs=outputs,
        metrics=manifest_metrics(figures, cfg, result),
        thresholds={"threshold": 0.5, "presence": presence},
        training_data="Kvasir-SEG train.txt minus frames >= 700 px wide (out-of-domain proxy), plus polyp-free "
        "crops of those frames (256 x 256 copy); figures on val.txt, val.txt crops and the held-out group only",
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        notes=f"{ARCHITECTURE[cfg.encoder]} with a frame-level head, int8; "
        f"input RGB float [0,1] {cfg.input_size}x{cfg.input_size} (quantised by ModelRunner); outputs polyp "
        f"probability {cfg.input_size // 2}x{cfg.input_size // 2} and polyp-present probability",
    )
    (model_dir / "manifest.json").write_bytes(encode_manifest(manifest))
    (model_dir / "MODEL_CARD.md").write_text(model_card(version, cfg, result, figures, tflite, choice))
    if key_path is not None:
        sign_model_dir(model_dir, load_private_key(key_path))
    return model_dir, figures
