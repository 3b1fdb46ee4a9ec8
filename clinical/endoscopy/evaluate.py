"""Evaluation of a segmentation model over a folder of images and masks.

This is how a hospital checks the model on its own data, and how the model's
published figures on Kvasir-SEG ``val.txt`` are measured: the same
ModelRunner, preprocessing and post-processing the gateway uses.

- Masks are grey-scale images thresholded at 128; images are resized to the
  model input. The probability map is resized to the mask's size and
  thresholded at ``threshold``.
- ``dice`` / ``iou``: mean over frames of the per-frame figure (a frame whose
  mask and prediction are both empty scores 1); ``dice_global`` /
  ``iou_global`` pool all pixels.
- Per frame, the model "finds a polyp" when post-processing yields a region
  (>= ``min_area`` of the frame). On a frame whose mask holds a polyp, that
  counts as a detection only if at least half of one region lies on the polyp
  (a region elsewhere is a miss). ``sensitivity`` is over frames whose mask
  holds a polyp, ``specificity`` over frames whose mask is empty (a frame with
  any region is a false finding); null where there are none.
  ``false_findings_per_frame`` is 1 - specificity: the share of polyp-free
  frames with a finding.
- With a 2.x model, a frame's regions count only when its frame-level
  "polyp present" probability reaches ``presence_threshold`` (as on the gateway).
  Thresholds left at None are the model's (its manifest's operating point, else 0.5).
- ``*_ci95``: 95 % percentile bootstrap intervals (frames resampled with
  replacement, ``bootstrap`` times, fixed seed) for the mean Dice, the
  sensitivity and the false findings per polyp-free frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clinical.endoscopy.postprocess import Detection, detect
from clinical.endoscopy.segmodel import OperatingPoint, OutputRoles, infer, preprocess
from clinical.litert import ModelRunner

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class EvalError(ValueError):
    pass


@dataclass
class EvalResult:
    n: int = 0
    skipped: list[str] = field(default_factory=list)
    dice_sum: float = 0.0
    iou_sum: float = 0.0
    inter: int = 0
    union: int = 0
    pred_sum: int = 0
    true_sum: int = 0
    tp: int = 0  # frames with a polyp where one was found
    fn: int = 0
    tn: int = 0  # frames without a polyp where none was found
    fp: int = 0
    bootstrap: int = 1000
    frame_dice: list[float] = field(default_factory=list)
    frame_positive: list[bool] = field(default_factory=list)
    frame_found: list[bool] = field(default_factory=list)

    def add(self, pred: np.ndarray, truth: np.ndarray, found: bool) -> None:
        inter = int(np.count_nonzero(pred & truth))
        p, t = int(np.count_nonzero(pred)), int(np.count_nonzero(truth))
        union = p + t - inter
        self.n += 1
        dice = 1.0 if p + t == 0 else 2.0 * inter / (p + t)
        self.frame_dice.append(dice)
        self.frame_positive.append(t > 0)
        self.frame_found.append(found)
        self.dice_sum += dice
        self.iou_sum += 1.0 if union == 0 else inter / union
        self.inter += inter
        self.union += union
        self.pred_sum += p
        self.true_sum += t
        if t > 0:
            self.tp += found
            self.fn += not found
        else:
            self.fp += found
            self.tn += not found

    def figures(self) -> dict[str, Any]:
        def ratio(a: int, b: int) -> float | None:
            return round(a / b, 4) if b else None

        return {
            "n": self.n,
            "dice": round(self.dice_sum / self.n, 4) if self.n else None,
            "iou": round(self.iou_sum / self.n, 4) if self.n else None,
            "dice_global": ratio(2 * self.inter, self.pred_sum + self.true_sum),
            "iou_global": ratio(self.inter, self.union),
            "sensitivity": ratio(self.tp, self.tp + self.fn),
            "specificity": ratio(self.tn, self.tn + self.fp),
            "false_findings_per_frame": ratio(self.fp, self.tn + self.fp),
            "positives": self.tp + self.fn,
            "negatives": self.tn + self.fp,
            "skipped": len(self.skipped),
            **self.intervals(),
        }

    def intervals(self) -> dict[str, list[float] | None]:
        """95 % bootstrap intervals of mean Dice, sensitivity and false findings per polyp-free frame."""
        rng = np.random.default_rng(12345)
        dice = np.asarray(self.frame_dice, np.float64)
        pos = np.asarray(self.frame_positive, bool)
        found = np.asarray(self.frame_found, np.float64)

        def ci(values: np.ndarray) -> list[float] | None:
            if values.size == 0 or self.bootstrap <= 0:
                return None
            idx = rng.integers(0, values.size, (self.bootstrap, values.size))
            means = values[idx].mean(axis=1)
            return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]

        return {"dice_ci95": ci(dice), "sensitivity_ci95": ci(found[pos]),
                "false_findings_ci95": ci(found[~pos])}


def pairs(images: Path, masks: Path | None,
          names: Sequence[str] | None = None) -> Iterator[tuple[str, Path, Path | None]]:
    """(name, image, mask) for each image; the mask has the same stem (any image suffix) or is None."""
    if names is None:
        names = sorted(p.name for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    by_stem: dict[str, Path] = {}
    if masks is not None and masks.is_dir():
        for p in masks.iterdir():
            if p.suffix.lower() in IMAGE_SUFFIXES:
                by_stem.setdefault(p.stem, p)
    for name in names:
        yield name, images / name, by_stem.get(Path(name).stem)


def evaluate(
    runner: ModelRunner,
    images: Path,
    masks: Path | None,
    names: Sequence[str] | None = None,
    threshold: float | None = None,
    min_area: float = 0.005,
    presence_threshold: float | None = None,
    bootstrap: int = 1000,
) -> EvalResult:
    """Run the model over every image with a mask; unreadable or unmatched pairs are skipped and listed.

    ``masks=None`` declares every frame polyp-free (a folder of healthy-mucosa frames needs no masks).
    """
    import cv2

    if not images.is_dir():
        raise EvalError(f"{images}: not a directory")
    if masks is not None and not masks.is_dir():
        raise EvalError(f"{masks}: not a directory")
    point = OperatingPoint.of(runner.manifest, threshold, presence_threshold)  # None: the manifest's
    threshold, presence_threshold = point.threshold, point.presence_threshold
    h, w = runner.input_shape[:2]
    res = EvalResult(bootstrap=bootstrap)
    roles = OutputRoles.of(runner)
    buf = np.empty((1, h, w, 3), np.float32)
    for name, img_path, mask_path in pairs(images, masks, names):
        img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
        if masks is None:
            mask = None if img is None else np.zeros(img.shape[:2], np.uint8)
        else:
            mask = None if mask_path is None else cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
        if img is None or mask is None:
            res.skipped.append(name)
            continue
        out = infer(runner, preprocess(img, (h, w), buf), roles)
        prob = out.prob[0]
        det = detect(prob, threshold, min_area, None if out.present is None else float(out.present[0]),
                     presence_threshold)
        found = det.present
        if found and mask.any():
            found = region_on_polyp(det, mask)
        full = cv2.resize(prob, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_LINEAR)
        res.add(full >= threshold, mask >= 128, found)
    return res


def region_on_polyp(det: Detection, mask: np.ndarray) -> bool:
    """Whether at least half of some region's pixels lie on the true polyp (at the map's resolution)."""
    import cv2

    w, h = det.map_size
    truth = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA) >= 128
    for r in det.regions:
        fill = np.zeros((h, w), np.uint8)
        cv2.drawContours(fill, [r.contour], -1, 1, thickness=cv2.FILLED)
        on = fill.astype(bool)
        if np.count_nonzero(on & truth) * 2 >= np.count_nonzero(on):
            return True
    return False
