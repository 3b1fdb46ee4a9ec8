"""Model selection for endoscopy-seg 2.x on a split carved from ``train.txt`` (never on ``val.txt``).

``val.txt`` stays an honest held-out set: the epoch that ships is chosen here, on ``SELECT_N`` in-domain
training frames that are not trained on (and on polyp-free crops of those frames), never on the
figures that are reported.

- ``selection_split``: a fixed, seeded draw of ``n`` names out of the training names.
- ``carve_out``: the whole split as training makes it from ``train.txt`` (out-of-domain proxy held out,
  then the selection draw), so the selection frames can be found again after training.
- ``SelectionSet.score``: the float Keras export on the selection frames: mean per-frame Dice of the map
  at the masks' size (threshold 0.5, as ``clinical.endoscopy.evaluate``) and the share of selection
  crops with a finding (present head and map through ``clinical.endoscopy.postprocess.detect``, as on
  the gateway).
- ``better``: the rule that picks the best epoch: among epochs whose crops' false-finding share is at
  most ``MAX_FALSE_FINDINGS``, the highest Dice (at equal Dice, as with a frozen map: the highest share
  of polyp frames passed by the present head minus the share of crops with a finding); an epoch over
  it loses to any epoch under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SELECT_N = 64
MAX_FALSE_FINDINGS = 0.05


def selection_split(names: list[str], n: int, seed: int) -> tuple[list[str], list[str]]:
    """(training names, selection names): ``n`` names drawn with ``seed``; order kept in both."""
    if n <= 0 or len(names) < 2:
        return list(names), []
    n = min(n, len(names) // 4 or 1)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(len(names), size=n, replace=False).tolist())
    return [x for i, x in enumerate(names) if i not in held], [x for i, x in enumerate(names) if i in held]


def carve_out(data_dir: Path, n: int, seed: int, limit: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(training, out-of-domain proxy, selection) names of ``data_dir/train.txt``, as ``train`` splits them."""
    from .endoscopy_data import ood_split, read_names

    names, ood = ood_split(data_dir, read_names(data_dir / "train.txt"))
    if limit:
        names = names[:limit]
    names, select = selection_split(names, n, seed)
    return names, ood, select


@dataclass
class SelectionSet:
    xs: np.ndarray  # (N, s, s, 3) uint8 polyp frames
    ys: np.ndarray  # (N, s, s) uint8 {0, 1}
    neg_x: np.ndarray  # (M, s, s, 3) uint8 polyp-free crops of those frames

    def score(self, export: Any, batch: int = 16) -> dict[str, float]:
        """{"dice", "false_findings", "present_pos"} of a Keras model with outputs (map, present)."""
        import cv2

        from clinical.endoscopy.postprocess import detect

        def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            maps, pres = [], []
            for i in range(0, len(x), batch):
                m, p = export(x[i : i + batch].astype(np.float32) / 255.0, training=False)
                maps.append(np.asarray(m)[..., 0])
                pres.append(np.asarray(p).reshape(-1))
            return np.concatenate(maps), np.concatenate(pres)

        dice = []
        if len(self.xs):
            maps, pres = run(self.xs)
            size = self.ys.shape[1:][::-1]
            for prob, truth in zip(maps, self.ys, strict=True):
                pred = cv2.resize(prob, size, interpolation=cv2.INTER_LINEAR) >= 0.5
                t = truth.astype(bool)
                s = int(pred.sum()) + int(t.sum())
                dice.append(1.0 if s == 0 else 2.0 * int((pred & t).sum()) / s)
            present_pos = float((pres >= 0.5).mean())
        else:
            present_pos = 0.0
        false = 0.0
        if len(self.neg_x):
            maps, pres = run(self.neg_x)
            false = float(np.mean([detect(m, presence=float(p)).present for m, p in zip(maps, pres, strict=True)]))
        return {"dice": float(np.mean(dice)) if dice else 0.0, "false_findings": false, "present_pos": present_pos}


def better(new: dict[str, float], best: dict[str, float] | None) -> bool:
    """Whether the ``new`` selection figures beat ``best`` (see the module docstring)."""
    if best is None:
        return True
    ok_new, ok_best = new["false_findings"] <= MAX_FALSE_FINDINGS, best["false_findings"] <= MAX_FALSE_FINDINGS
    if ok_new != ok_best:
        return ok_new
    if abs(new["dice"] - best["dice"]) < 1e-4:  # the same map (e.g. frozen): the better present head wins
        return youden(new) > youden(best)
    return new["dice"] > best["dice"]


def youden(figs: dict[str, float]) -> float:
    """Share of selection polyp frames the present head passes minus share of crops with a finding."""
    return figs["present_pos"] - figs["false_findings"]
