"""False findings per minute: a video, or an ordered folder of frames, through the gateway's smoothing.

Per-frame figures overstate what an endoscopist sees: the gateway raises a finding only when enough
frames of its window hold a polyp (:class:`clinical.endoscopy.postprocess.FindingSmoother`). Here the
frames are run in order through the same model, ``detect`` and smoother, and every raised finding is
counted.

- Without masks the whole sequence is taken as polyp-free: every raised finding is false.
- With masks (same file stems as the frames; a video's frames are named ``000000`` ...), a finding is
  false when it is raised on a frame whose mask is empty; frames without a mask are still fed to the
  smoother (continuity) but neither counted as polyp-free time nor judged.
- ``false_findings_per_minute`` divides by the polyp-free time (polyp-free frames / fps).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clinical.endoscopy.evaluate import IMAGE_SUFFIXES, EvalError
from clinical.endoscopy.postprocess import FindingSmoother, detect
from clinical.endoscopy.segmodel import OperatingPoint, OutputRoles, infer, preprocess
from clinical.litert import ModelRunner


@dataclass
class SequenceResult:
    fps: float
    frames: int = 0
    frames_with_detection: int = 0  # per-frame regions (before smoothing)
    polyp_free_frames: int = 0
    polyp_free_frames_with_detection: int = 0
    findings: int = 0  # raised by the smoother
    false_findings: int = 0
    unjudged_findings: int = 0  # raised on a frame without a mask
    skipped: int = 0  # unreadable frames

    def figures(self) -> dict[str, Any]:
        minutes = self.polyp_free_frames / self.fps / 60.0 if self.fps > 0 else 0.0
        return {
            "frames": self.frames,
            "fps": round(self.fps, 3),
            "polyp_free_minutes": round(minutes, 3),
            "frames_with_detection": self.frames_with_detection,
            "false_detections_per_frame": round(self.polyp_free_frames_with_detection / self.polyp_free_frames, 4)
            if self.polyp_free_frames else None,
            "findings_raised": self.findings,
            "false_findings": self.false_findings,
            "unjudged_findings": self.unjudged_findings,
            "false_findings_per_minute": round(self.false_findings / minutes, 3) if minutes > 0 else None,
            "skipped": self.skipped,
        }


def frames_of(source: Path, fps: float | None) -> tuple[Iterator[tuple[str, np.ndarray | None]], float]:
    """(frame stem, BGR image or None when unreadable) in order, and the frame rate."""
    import cv2

    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EvalError(f"{source}: no image files")

        def from_dir() -> Iterator[tuple[str, np.ndarray | None]]:
            for p in files:
                img = cv2.imread(str(p), cv2.IMREAD_COLOR)
                yield p.stem, None if img is None else np.asarray(img)

        return from_dir(), fps or 30.0
    if not source.is_file():
        raise EvalError(f"{source}: no such video file or folder")
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise EvalError(f"{source}: cannot open as video")
    rate = fps or float(cap.get(cv2.CAP_PROP_FPS)) or 30.0

    def from_video() -> Iterator[tuple[str, np.ndarray | None]]:
        i = 0
        try:
            while True:
                ok, img = cap.read()
                if not ok:
                    return
                yield f"{i:06d}", np.asarray(img)
                i += 1
        finally:
            cap.release()

    return from_video(), rate


def evaluate_sequence(
    runner: ModelRunner, source: Path, masks: Path | None = None, fps: float | None = None,
    threshold: float | None = None, min_area: float = 0.005, presence_threshold: float | None = None,
    window: int = 8, min_hits: int = 6,
) -> SequenceResult:
    """Thresholds left at None are the model's (its manifest's operating point, else 0.5)."""
    import cv2

    point = OperatingPoint.of(runner.manifest, threshold, presence_threshold)
    threshold, presence_threshold = point.threshold, point.presence_threshold
    if masks is not None and not masks.is_dir():
        raise EvalError(f"{masks}: not a directory")
    by_stem = {p.stem: p for p in masks.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES} if masks else {}
    frames, rate = frames_of(source, fps)
    res = SequenceResult(fps=rate)
    smoother = FindingSmoother("eval", window, min_hits)
    roles = OutputRoles.of(runner)
    h, w = runner.input_shape[:2]
    buf = np.empty((1, h, w, 3), np.float32)
    for i, (stem, img) in enumerate(frames):
        if img is None:
            res.skipped += 1
            continue
        polyp_free: bool | None = True
        if masks is not None:
            mp = by_stem.get(stem)
            mask = None if mp is None else cv2.imread(str(mp), cv2.IMREAD_GRAYSCALE)
            polyp_free = None if mask is None else not bool((mask >= 128).any())
        out = infer(runner, preprocess(img, (h, w), buf), roles)
        det = detect(out.prob[0], threshold, min_area, None if out.present is None else float(out.present[0]),
                     presence_threshold)
        res.frames += 1
        res.frames_with_detection += det.present
        if polyp_free:
            res.polyp_free_frames += 1
            res.polyp_free_frames_with_detection += det.present
        before = smoother.raised
        smoother.update(det, int(i * 1e9 / rate), i / rate)
        if smoother.raised > before:
            res.findings += 1
            if polyp_free is None:
                res.unjudged_findings += 1
            elif polyp_free:
                res.false_findings += 1
    return res
