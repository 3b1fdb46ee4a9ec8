"""The clinical gate a retrained candidate must pass before anything is signed (pure).

Non-inferiority on the same held-out fleet patients, PAIRED: each bootstrap resample draws patients with
replacement (``resamples`` times, fixed seed) and computes candidate - active on that same draw, so a
patient's episodes, alarms and stable time move together for both models and the interval is the
interval of the DIFFERENCE. Variation that both models share (which patients happened to be held out,
how hard their episodes were) cancels; what is left is where the two models disagree. That is stricter
than comparing two independent intervals (which overlap, and "pass", even when the candidate misses
episodes the active catches) and far less noisy (two models that agree on every patient have an
interval of exactly zero however few the patients are):

- sensitivity: the one-sided 95 % lower bound of (candidate - active) must be >= ``-sens_margin``;
- false alarms per patient-day: the one-sided 95 % upper bound of (candidate - active) must be
  <= ``fa_margin``.

Both must hold; either failing refuses the candidate, each with its reason. Margins are stated in the
output. With few held-out episodes the interval is wide and the gate refuses: a candidate is not shipped
on evidence that cannot tell it from a worse one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cloud.training.fleet_eval import PatientFigures


@dataclass(frozen=True)
class GateConfig:
    sens_margin: float = 0.05
    fa_margin: float = 0.5  # false alarms per patient-day
    confidence: float = 0.95  # one-sided
    resamples: int = 2000
    seed: int = 12


def _rates(det: np.ndarray, ep: np.ndarray, fa: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return det.sum(-1) / ep.sum(-1), fa.sum(-1) / days.sum(-1)


def _q(x: np.ndarray, at: float, empty: float | None = None) -> float | None:
    x = x[np.isfinite(x)]
    return round(float(np.quantile(x, at)), 4) if len(x) else empty


def gate(candidate: list[PatientFigures], active: list[PatientFigures], cfg: GateConfig = GateConfig()) -> dict[
        str, Any]:
    """``{"pass", "reasons", "sensitivity_delta", "false_alarms_delta", "margins", ...}``."""
    assert [c.patient for c in candidate] == [a.patient for a in active], "the same held-out patients"
    n = len(candidate)
    ep = np.array([c.episodes for c in candidate], float)
    days = np.array([c.stable_days for c in candidate], float)
    det_c, det_a = (np.array([f.detected for f in x], float) for x in (candidate, active))
    fa_c, fa_a = (np.array([f.false_alarms for f in x], float) for x in (candidate, active))
    reasons: list[str] = []
    out: dict[str, Any] = {"margins": {"sensitivity": -cfg.sens_margin, "false_alarms_per_patient_day": cfg.fa_margin},
                           "confidence": cfg.confidence, "bootstrap": {"over": "patients", "resamples": cfg.resamples,
                                                                       "seed": cfg.seed}}
    if n == 0 or ep.sum() == 0 or days.sum() == 0:
        out.update({"pass": False, "reasons": ["no held-out episodes or stable time to compare on"]})
        return out
    rng = np.random.default_rng(cfg.seed)
    idx = rng.integers(0, n, (cfg.resamples, n))
    sc, fc = _rates(det_c[idx], ep[idx], fa_c[idx], days[idx])
    sa, fa = _rates(det_a[idx], ep[idx], fa_a[idx], days[idx])
    ds, dfa = sc - sa, fc - fa
    ds, dfa = ds[np.isfinite(ds)], dfa[np.isfinite(dfa)]
    q = 1.0 - cfg.confidence
    s_point = float(det_c.sum() / ep.sum() - det_a.sum() / ep.sum())
    f_point = float(fa_c.sum() / days.sum() - fa_a.sum() / days.sum())
    s_low = float(np.quantile(ds, q)) if len(ds) else -1.0
    f_high = float(np.quantile(dfa, 1.0 - q)) if len(dfa) else float("inf")
    out["paired"] = True
    out["sensitivity_delta"] = {"point": round(s_point, 4), "lower": round(s_low, 4),
                                "upper": _q(ds, 1.0 - q, 1.0)}
    out["false_alarms_delta"] = {"point": round(f_point, 3), "upper": round(f_high, 3),
                                 "lower": _q(dfa, q)}
    lo, hi = q, 1.0 - q  # each model's own two-sided interval, for the report (the gate uses the difference's)
    out["intervals"] = {
        "level": round(1.0 - 2.0 * q, 3),
        "candidate": {"sensitivity": [_q(sc, lo), _q(sc, hi)], "false_alarms_per_patient_day": [_q(fc, lo),
                                                                                                 _q(fc, hi)]},
        "active": {"sensitivity": [_q(sa, lo), _q(sa, hi)], "false_alarms_per_patient_day": [_q(fa, lo),
                                                                                           _q(fa, hi)]},
    }
    out["discordant"] = {"episodes_only_candidate": int(np.maximum(det_c - det_a, 0).sum()),
                         "episodes_only_active": int(np.maximum(det_a - det_c, 0).sum())}
    if s_low < -cfg.sens_margin:
        reasons.append(f"sensitivity may be lower: candidate - active {s_point:+.3f}, {cfg.confidence:.0%} lower "
                       f"bound {s_low:+.3f} < -{cfg.sens_margin}")
    if f_high > cfg.fa_margin:
        reasons.append(f"false alarms may be higher: candidate - active {f_point:+.2f}/patient-day, "
                       f"{cfg.confidence:.0%} upper bound {f_high:+.2f} > +{cfg.fa_margin}")
    out["pass"] = not reasons
    out["reasons"] = reasons or [f"sensitivity lower bound {s_low:+.3f} >= -{cfg.sens_margin} and false-alarm "
                                 f"upper bound {f_high:+.2f} <= +{cfg.fa_margin}"]
    return out
