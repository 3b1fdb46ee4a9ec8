"""A new endoscopy-seg version with the same model file and the presence threshold chosen again.

``pulsegate model threshold-endoscopy``: the weights stay those of the source version (``model.tflite``
copied byte for byte); only the manifest's ``thresholds.presence`` changes. The threshold is chosen by a
rule fixed in advance (``endoscopy_threshold.choose_fewest``) on the selection split carved from
``train.txt`` exactly as training carved it (``endoscopy_select.carve_out``, same seed and size) and on
polyp-free crops of those frames, plain and re-rendered as another scope (``choose_presence``). Never on
``val.txt``, its crops or the out-of-domain proxy: those are measured afterwards, at the chosen
threshold, for the manifest and the model card (``endoscopy_release.evaluate_heldout``).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from .endoscopy_select import SELECT_N, carve_out
from .endoscopy_threshold import FEWEST_MAX_LOSS, GRID, PresenceChoice, choose_fewest, choose_presence


def choose_again(model_dir: Path, data_dir: Path, trusted_keys: Sequence[Path], *, seed: int, select_n: int = SELECT_N,
                 max_loss: float = FEWEST_MAX_LOSS, grid: tuple[float, ...] = GRID,
                 threads: int = 2) -> tuple[PresenceChoice, Any]:
    """(the choice on the carve-out, the source manifest); the source must verify with ``trusted_keys``."""
    from clinical.endoscopy.segmodel import load_verified

    _, manifest = load_verified(model_dir, trusted_keys, threads)
    if not (data_dir / "train.txt").exists():
        raise FileNotFoundError(f"{data_dir}: no Kvasir-SEG train.txt")
    _, _, select = carve_out(data_dir, select_n, seed)
    if not select:
        raise ValueError(f"{data_dir}/train.txt: too few frames to carve out a selection split")
    size = int(manifest.inputs[0].shape[1])
    pixel = float(manifest.thresholds.get("threshold", 0.5))
    choice = choose_presence(model_dir / "model.tflite", data_dir, select, size, seed, threads,
                             rule=lambda t: choose_fewest(t, max_loss), grid=grid, threshold=pixel)
    return choice, manifest


def write_version(model_dir: Path, version: str, choice: PresenceChoice, source: Any, data_dir: Path,
                  key_path: Path | None, *, seed: int, max_loss: float = FEWEST_MAX_LOSS, threads: int = 2,
                  log: Callable[[str], None] = print) -> tuple[Path, dict[str, dict[str, Any]]]:
    """``model_dir.parent/version``: the source's model.tflite, manifest with the new presence threshold and
    held-out figures at it, MODEL_CARD.md, signed with ``key_path``. Returns it and the figures."""
    from wire.model_manifest import encode_manifest, load_private_key, sign_model_dir, version_tuple

    from .endoscopy_card import rethreshold_card
    from .endoscopy_release import evaluate_heldout, heldout_metrics

    if version_tuple(version) <= version_tuple(source.version):
        raise ValueError(f"version {version} is not newer than {source.version}")
    dst = model_dir.parent / version
    if dst.exists():
        raise FileExistsError(f"{dst} exists: choose another --version")
    dst.mkdir(parents=True)
    try:
        shutil.copyfile(model_dir / "model.tflite", dst / "model.tflite")
        log(f"held-out figures at presence {choice.presence:.2f} (val.txt, its crops, out-of-domain proxies)")
        figures = evaluate_heldout(dst / "model.tflite", data_dir, threads, choice.presence)
        old = source.thresholds.get("presence", 0.5)
        m = msgspec.structs.replace(
            source, version=version, thresholds={**source.thresholds, "presence": choice.presence},
            metrics={**source.metrics, **heldout_metrics(figures), "presence_from": source.version,
                     "presence_previous": old, "presence_rule": f"fewest carve-out crops with a finding, carve-out "
                     f"polyp frames found within {max_loss} of presence 0.5", "presence_select_seed": seed},
            created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            notes=f"{source.notes}; {version} = {source.version}'s model.tflite with the presence threshold chosen "
                  f"again ({old} -> {choice.presence}) on the train.txt carve-out")
        (dst / "manifest.json").write_bytes(encode_manifest(m))
        old_card = model_dir / "MODEL_CARD.md"
        card = rethreshold_card(version, source, old_card.read_text() if old_card.exists() else "", choice,
                                figures, max_loss, seed)
        (dst / "MODEL_CARD.md").write_text(card)
        if key_path is not None:
            sign_model_dir(dst, load_private_key(key_path))
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)  # no half-written version for the gateway to find
        raise
    return dst, figures
