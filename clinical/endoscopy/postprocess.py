"""Probability map -> regions -> per-frame detection -> smoothed findings.

``detect`` turns the model's polyp probability map into regions (contours of
the thresholded map, small specks removed). With a model that also gives a
frame-level "polyp present" probability (2.x), a frame whose presence is below
``presence_threshold`` yields no region at all: both heads must agree before a
frame counts as evidence. ``FindingSmoother`` keeps a window
of the last few frames and raises a finding only when enough of them hold a
polyp, and clears it only when none of them does, so a one-frame flicker
neither raises nor clears a finding.

No pixels leave this module: a :class:`PolypFinding` holds geometry only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from wire.messages import VERSION, Finding


@dataclass(frozen=True, slots=True)
class Region:
    contour: np.ndarray  # (K, 1, 2) int32 points in probability-map pixels
    box: tuple[float, float, float, float]  # x, y, w, h as fractions of the frame
    area: float  # fraction of the frame
    confidence: float  # mean polyp probability inside the region


@dataclass(frozen=True, slots=True)
class Detection:
    regions: tuple[Region, ...]
    map_size: tuple[int, int]  # width, height of the probability map
    presence: float | None = None  # the model's frame-level polyp probability (2.x models)
    suppressed: int = 0  # regions dropped because the presence score was below its threshold

    @property
    def present(self) -> bool:
        return bool(self.regions)

    @property
    def best(self) -> Region | None:
        return max(self.regions, key=lambda r: r.area * r.confidence) if self.regions else None


def detect(
    prob: np.ndarray, threshold: float = 0.5, min_area: float = 0.005, presence: float | None = None,
    presence_threshold: float = 0.5,
) -> Detection:
    """Regions of ``prob`` (H x W floats in [0, 1]) above ``threshold`` covering >= ``min_area``.

    ``presence`` (when the model gives one) below ``presence_threshold`` suppresses every region.
    """
    import cv2

    if prob.ndim == 3:
        prob = prob[..., 0]
    h, w = prob.shape
    mask = (prob >= threshold).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    regions = []
    total = float(h * w)
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        sub = mask[y : y + bh, x : x + bw]
        filled = np.zeros_like(sub)
        cv2.drawContours(filled, [c], -1, 1, thickness=cv2.FILLED, offset=(-x, -y))
        inside = filled.astype(bool) & sub.astype(bool)
        n = int(inside.sum())
        if n == 0 or n / total < min_area:
            continue
        conf = float(prob[y : y + bh, x : x + bw][inside].mean())
        regions.append(Region(c, (x / w, y / h, bw / w, bh / h), n / total, conf))
    regions.sort(key=lambda r: r.area, reverse=True)
    if presence is not None and presence < presence_threshold:
        return Detection((), (w, h), presence, len(regions))
    return Detection(tuple(regions), (w, h), presence)


@dataclass(frozen=True, slots=True)
class PolypFinding:
    """A smoothed finding, geometry only. ``present=False`` clears a raised finding."""

    t_ns: int  # wall-clock capture time of the frame
    room: str
    present: bool
    confidence: float
    area: float
    box: tuple[float, float, float, float] | None

    def to_message(self, gw: str, seq: int) -> Finding:
        return Finding(
            v=VERSION, gw=gw, seq=seq, t=self.t_ns, room=self.room, present=self.present,
            confidence=round(self.confidence, 4), area=round(self.area, 5),
            box=None if self.box is None else tuple(round(v, 4) for v in self.box),  # type: ignore[arg-type]
        )


class FindingSmoother:
    """Temporal smoothing over the last ``window`` frames.

    Raises when at least ``min_hits`` frames of the window hold a polyp, clears
    when none does; while raised, re-reports the finding every ``update_s``
    seconds with the latest geometry.
    """

    def __init__(self, room: str, window: int = 5, min_hits: int = 3, update_s: float = 1.0) -> None:
        if not 1 <= min_hits <= window:
            raise ValueError(f"min_hits {min_hits} must be within 1..window ({window})")
        self.room = room
        self.window = window
        self.min_hits = min_hits
        self.update_s = update_s
        self._hits: deque[Region | None] = deque(maxlen=window)
        self.active = False
        self._last_report = 0.0
        self.raised = 0  # findings raised since start

    @property
    def hits(self) -> int:
        return sum(r is not None for r in self._hits)

    def update(self, det: Detection, t_ns: int, mono: float) -> PolypFinding | None:
        """Feed one frame's detection; returns a finding to report, or None."""
        self._hits.append(det.best)
        hits = self.hits
        if not self.active and hits >= self.min_hits:
            self.active = True
            self.raised += 1
            self._last_report = mono
            return self._finding(t_ns, True)
        if self.active and hits == 0:
            self.active = False
            self._last_report = mono
            return PolypFinding(t_ns, self.room, False, 0.0, 0.0, None)
        if self.active and det.present and mono - self._last_report >= self.update_s:
            self._last_report = mono
            return self._finding(t_ns, True)
        return None

    def _finding(self, t_ns: int, present: bool) -> PolypFinding:
        seen = [r for r in self._hits if r is not None]
        latest = seen[-1]
        conf = float(np.mean([r.confidence for r in seen])) * len(seen) / self.window
        return PolypFinding(t_ns, self.room, present, conf, latest.area, latest.box)
