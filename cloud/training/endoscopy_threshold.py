"""The presence threshold that ships in an endoscopy-seg manifest, chosen on data carved from ``train.txt``.

Never chosen on ``val.txt``, its crops or any unseen frames: the candidate thresholds are scored on the
selection split (``endoscopy_select``: training frames carved out of training) and polyp-free crops of
those frames, each also re-rendered as another scope would show it (``endoscopy_shift.scope_shift``:
resolution, colour cast, gamma, defocus, JPEG) to stand in for another source. The int8 model is run
once per image through the gateway's ModelRunner; every threshold is then applied to the same outputs
through ``clinical.endoscopy.postprocess.detect``.

Rule (``choose``): among the thresholds of ``GRID`` that keep the share of carve-out polyp frames found
within ``MAX_SENSITIVITY_LOSS`` of the share found at 0.5, the lowest whose share of crops with a
finding is at most ``TARGET_FALSE`` (the issue's goal, 2 %); when none gets there, the one with the
fewest (the lowest among equals). This rule chose 2.0.1's 0.60.

Rule ``choose_fewest`` (``pulsegate model threshold-endoscopy``; it chose 2.0.2's 0.70):
among the thresholds of ``GRID`` that keep the share of carve-out polyp frames found within
``FEWEST_MAX_LOSS`` (0.01) of the share found at 0.5, the one with the fewest carve-out crops with a
finding (the lowest among equals). It trades at most one point of carve-out sensitivity for false
findings, where ``choose`` stops as soon as the 2 % target is reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

GRID = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5 .. 0.95
TARGET_FALSE = 0.02
MAX_SENSITIVITY_LOSS = 0.02
FEWEST_MAX_LOSS = 0.01


@dataclass
class PresenceChoice:
    presence: float
    table: list[dict[str, float]] = field(default_factory=list)  # per threshold: found, false
    frames: int = 0  # polyp frames scored (plain + shifted)
    crops: int = 0  # polyp-free crops scored (plain + shifted)


def _within(table: list[dict[str, float]], max_loss: float) -> list[dict[str, float]]:
    """Rows whose share of polyp frames found is within ``max_loss`` of the lowest threshold's."""
    base = next(r["found"] for r in table if r["t"] == min(x["t"] for x in table))
    return [r for r in table if r["found"] >= base - max_loss - 1e-9]


def _fewest(rows: list[dict[str, float]]) -> float:
    fewest = min(r["false"] for r in rows)
    return min(r["t"] for r in rows if r["false"] == fewest)


def choose(table: list[dict[str, float]]) -> float:
    """The threshold the rule of the module docstring picks from rows {"t", "found", "false"}."""
    ok = _within(table, MAX_SENSITIVITY_LOSS)
    hit = [r for r in ok if r["false"] <= TARGET_FALSE + 1e-9]
    if hit:
        return min(r["t"] for r in hit)
    return _fewest(ok)


def choose_fewest(table: list[dict[str, float]], max_loss: float = FEWEST_MAX_LOSS) -> float:
    """Rule ``choose_fewest`` of the module docstring: the fewest crops with a finding within ``max_loss``."""
    return _fewest(_within(table, max_loss))


def score_table(runner: Any, xs: np.ndarray, ys: np.ndarray, crops: np.ndarray, threshold: float = 0.5,
                grid: tuple[float, ...] = GRID) -> list[dict[str, float]]:
    """Per presence threshold: share of polyp frames ``xs`` (masks ``ys``) found, share of ``crops`` with a finding."""
    from clinical.endoscopy.evaluate import region_on_polyp
    from clinical.endoscopy.postprocess import detect
    from clinical.endoscopy.segmodel import OutputRoles, infer

    roles = OutputRoles.of(runner)

    def outputs(images: np.ndarray) -> list[tuple[np.ndarray, float]]:
        res = []
        for img in images:
            out = infer(runner, img[None].astype(np.float32) / 255.0, roles)
            res.append((out.prob[0], 1.0 if out.present is None else float(out.present[0])))
        return res

    pos, neg = outputs(xs), outputs(crops)
    masks = [(y * 255).astype(np.uint8) for y in ys]
    table = []
    for t in grid:
        found = [region_on_polyp(d, m) for (p, s), m in zip(pos, masks, strict=True)
                 if (d := detect(p, threshold, presence=s, presence_threshold=t)).present]
        false = [detect(p, threshold, presence=s, presence_threshold=t).present for p, s in neg]
        table.append({"t": t, "found": round(sum(found) / max(1, len(pos)), 4),
                      "false": round(float(np.mean(false)) if false else 0.0, 4)})
    return table


def choose_presence(tflite: Path, data_dir: Path, names: list[str], size: int, seed: int, threads: int = 2,
                    rule: Callable[[list[dict[str, float]]], float] = choose,
                    grid: tuple[float, ...] = GRID, threshold: float = 0.5) -> PresenceChoice:
    """Score ``names`` (the selection split) and their crops, plain and shifted, on ``grid`` and apply ``rule``."""
    from clinical.litert import ModelRunner

    from .endoscopy_data import load_frames, negative_crops
    from .endoscopy_shift import scope_shift

    xs, ys = load_frames(data_dir, names, size)
    crops = negative_crops(xs, ys, size, seed + 1)[0]  # the crops SelectionSet scores during training
    shifted_x = np.stack([scope_shift(x, 5000 + k) for k, x in enumerate(xs)]) if len(xs) else xs
    shifted_c = np.stack([scope_shift(c, 7000 + k) for k, c in enumerate(crops)]) if len(crops) else crops
    all_x, all_y = np.concatenate([xs, shifted_x]), np.concatenate([ys, ys])
    all_c = np.concatenate([crops, shifted_c])
    table = score_table(ModelRunner(tflite, num_threads=threads), all_x, all_y, all_c, threshold, grid)
    return PresenceChoice(rule(table), table, len(all_x), len(all_c))
