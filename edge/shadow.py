"""Shadow evaluation of a candidate anomaly model beside the active one.

:class:`ShadowScorer` is the scorer the clinical stage calls. It always
returns the ACTIVE model's scores; while a candidate is in shadow it also runs
the candidate on the very same batch and keeps score: outputs must be finite
probabilities, and the two models' alarm decisions (each at its own
threshold) must agree on at least ``min_agreement`` of the beds scored. After
``rounds`` scoring rounds covering at least ``min_beds`` bed-windows the
candidate is promoted (it becomes active) or rejected (it is dropped), and
``on_decision`` is told which. A candidate never affects an alarm while in
shadow.

In a staged rollout (``begin(candidate, hold=True)``) the gateway does not decide by itself: it keeps
shadowing and reporting (:meth:`figures`: alarm decisions of each model on the same bed-windows,
agreement, the candidate's invoke times, errors) until the cloud's signed command calls
:meth:`promote` or :meth:`reject`. A candidate that raises or returns invalid outputs is still dropped at
once by the gateway itself: no cloud decision is needed to stop a broken model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from clinical.anomaly import AnomalyScorer
from clinical.bedstate import BedState


@dataclass
class ShadowResult:
    version: str
    promoted: bool
    rounds: int
    beds: int
    agreement: float
    invalid_outputs: int
    reason: str


@dataclass
class ShadowFigures:
    """What a staged rollout reports while a candidate shadows (and once more at its decision)."""

    version: str
    rounds: int
    bed_windows: int
    agreement: float
    cand_alarms: int  # bed-windows at or over the candidate's threshold
    active_alarms: int  # the same bed-windows at or over the active model's threshold
    invoke_ms_p50: float
    invoke_ms_max: float
    errors: int
    invalid: int
    cand_beds: int = 0  # beds the candidate alarmed on at least once
    active_beds: int = 0
    both_beds: int = 0


class Versioned(AnomalyScorer, Protocol):
    version: str


class ShadowScorer:
    def __init__(
        self,
        active: Versioned,
        on_decision: Callable[[ShadowResult], None] | None = None,
        rounds: int = 60,
        min_beds: int = 30,
        min_agreement: float = 0.9,
    ) -> None:
        self.active = active
        self.on_decision = on_decision
        self.rounds_needed = rounds
        self.min_beds = min_beds
        self.min_agreement = min_agreement
        self.candidate: Versioned | None = None
        self.hold = False
        self.last_figures: ShadowFigures | None = None  # the last candidate's figures at its decision
        # AnomalyScorer protocol: the active model's threshold and window requirement
        self.threshold = active.threshold
        self.min_buckets = active.min_buckets
        self._reset()

    def _reset(self) -> None:
        self._rounds = self._beds = self._agree = self._invalid = self._errors = 0
        self._cand_alarms = self._active_alarms = 0
        self._cand_beds: set[str] = set()
        self._active_beds: set[str] = set()
        self._invoke_ms: list[float] = []

    def begin(self, candidate: Versioned, hold: bool = False) -> None:
        self.candidate = candidate
        self.hold = hold
        self._reset()

    def score(self, beds: Sequence[BedState]) -> np.ndarray:
        scores = self.active.score(beds)
        cand = self.candidate
        if cand is not None and len(beds):
            t0 = time.perf_counter()
            try:
                c = np.asarray(cand.score(beds), np.float64)
            except Exception as exc:  # a candidate that crashes is rejected, never the active path
                self._errors += 1
                self._decide(False, f"candidate raised {type(exc).__name__}")
                return scores
            self._invoke_ms.append((time.perf_counter() - t0) * 1000.0)
            if len(self._invoke_ms) > 1000:
                del self._invoke_ms[:500]
            bad = ~np.isfinite(c) | (c < 0.0) | (c > 1.0)
            self._invalid += int(bad.sum())
            a_on, c_on = scores >= self.active.threshold, c >= cand.threshold
            self._agree += int((a_on == c_on).sum())
            n_cand, n_active = int(c_on.sum()), int(a_on.sum())
            self._cand_alarms += n_cand
            self._active_alarms += n_active
            if n_cand or n_active:  # which beds: an earlier warning on the same bed is no extra alarm
                for b, c_b, a_b in zip(beds, c_on, a_on, strict=True):
                    if c_b:
                        self._cand_beds.add(b.bed)
                    if a_b:
                        self._active_beds.add(b.bed)
            self._beds += len(beds)
            self._rounds += 1
            if self.hold:
                if self._invalid:
                    self._decide(False, f"{self._invalid} invalid outputs")
            elif self._rounds >= self.rounds_needed and self._beds >= self.min_beds:
                agreement = self._agree / self._beds
                if self._invalid:
                    self._decide(False, f"{self._invalid} invalid outputs")
                elif agreement < self.min_agreement:
                    self._decide(False, f"agreement {agreement:.3f} < {self.min_agreement}")
                else:
                    self._decide(True, f"agreement {agreement:.3f} over {self._beds} bed-windows")
        return scores

    def figures(self) -> ShadowFigures | None:
        cand = self.candidate
        if cand is None:
            return None
        return self._figures(cand.version)

    def _figures(self, version: str) -> ShadowFigures:
        inv = sorted(self._invoke_ms)
        return ShadowFigures(version, self._rounds, self._beds, self._agree / self._beds if self._beds else 1.0,
                             self._cand_alarms, self._active_alarms, inv[len(inv) // 2] if inv else 0.0,
                             inv[-1] if inv else 0.0, self._errors, self._invalid, len(self._cand_beds),
                             len(self._active_beds), len(self._cand_beds & self._active_beds))

    def promote(self, reason: str) -> bool:
        """The cloud's decision: the candidate becomes the active model. False when none is in shadow."""
        if self.candidate is None:
            return False
        self._decide(True, reason)
        return True

    def reject(self, reason: str) -> bool:
        if self.candidate is None:
            return False
        self._decide(False, reason)
        return True

    def _decide(self, promote: bool, reason: str) -> None:
        cand = self.candidate
        if cand is None:
            return
        self.last_figures = self._figures(cand.version)
        result = ShadowResult(cand.version, promote, self._rounds, self._beds,
                              self._agree / self._beds if self._beds else math.nan, self._invalid, reason)
        self.candidate = None
        self.hold = False
        if promote:
            self.active = cand
            self.threshold, self.min_buckets = cand.threshold, cand.min_buckets
        if self.on_decision is not None:
            self.on_decision(result)
