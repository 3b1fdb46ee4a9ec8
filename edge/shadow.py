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
"""

from __future__ import annotations

import math
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
        # AnomalyScorer protocol: the active model's threshold and window requirement
        self.threshold = active.threshold
        self.min_buckets = active.min_buckets
        self._rounds = self._beds = self._agree = self._invalid = 0

    def begin(self, candidate: Versioned) -> None:
        self.candidate = candidate
        self._rounds = self._beds = self._agree = self._invalid = 0

    def score(self, beds: Sequence[BedState]) -> np.ndarray:
        scores = self.active.score(beds)
        cand = self.candidate
        if cand is not None and len(beds):
            try:
                c = np.asarray(cand.score(beds), np.float64)
            except Exception as exc:  # a candidate that crashes is rejected, never the active path
                self._decide(False, f"candidate raised {type(exc).__name__}")
                return scores
            bad = ~np.isfinite(c) | (c < 0.0) | (c > 1.0)
            self._invalid += int(bad.sum())
            self._agree += int(((scores >= self.active.threshold) == (c >= cand.threshold)).sum())
            self._beds += len(beds)
            self._rounds += 1
            if self._rounds >= self.rounds_needed and self._beds >= self.min_beds:
                agreement = self._agree / self._beds
                if self._invalid:
                    self._decide(False, f"{self._invalid} invalid outputs")
                elif agreement < self.min_agreement:
                    self._decide(False, f"agreement {agreement:.3f} < {self.min_agreement}")
                else:
                    self._decide(True, f"agreement {agreement:.3f} over {self._beds} bed-windows")
        return scores

    def _decide(self, promote: bool, reason: str) -> None:
        cand = self.candidate
        if cand is None:
            return
        result = ShadowResult(cand.version, promote, self._rounds, self._beds,
                              self._agree / self._beds if self._beds else math.nan, self._invalid, reason)
        self.candidate = None
        if promote:
            self.active = cand
            self.threshold, self.min_buckets = cand.threshold, cand.min_buckets
        if self.on_decision is not None:
            self.on_decision(result)
