"""Choose a vitals-anomaly 2.x model's alarm threshold again, with an explicit false-alarm budget.

The model's weights stay as they are; only the threshold in its manifest changes, so the result is a new
version (same ``model.tflite``, new ``manifest.json``, signed through the usual path). The threshold is
the lowest whose simulated gateway alarms (cloud/training/vitals_anomaly2.py ``alarm_metrics``: the score
held 2 minutes, cleared after 10) stay within ``fa_budget`` false alarms per patient-day of stable time on
*validation* patients (seeds 1001-1999, never a held-out set), scored by the gateway's own LiteRT runner.

Why a budget and not "the same 0.5 as the whole policy": the model's alarms add to the rules' and
NEWS2's, so the model's share of the floor (0.5 episodes per patient-day for everything) must be a part
of it. Validation can mix generator variants (``variants``) so the threshold also holds where the monitor
sends no pulse rate or perfusion index and the noise is higher.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from cloud.training.ward_scenarios import WARD_VARIANTS as VARIANTS
from wire.model_manifest import Manifest, encode_manifest


def validation_scores(model_dir: Path, seed: int, count: int, hours: float, variant: dict[str, Any],
                      ) -> tuple[list[Any], list[np.ndarray]]:
    from clinical.anomaly import VitalsAnomalyModel
    from clinical.model_input import inputs_for
    from cloud.training.patient_buckets import ward_patient_buckets
    from cloud.training.vitals_anomaly2 import KIND, MIN_BUCKETS
    from cloud.training.ward_scenarios import WardParams

    model = VitalsAnomalyModel(model_dir)
    pbs = ward_patient_buckets(seed, count, replace(WardParams(hours=hours), **variant))
    scores = []
    for pb in pbs:
        at = np.arange(MIN_BUCKETS, len(pb.ends))
        x = inputs_for(KIND, pb.rows, at)
        out = [model.score_windows(x[k:k + 512]) for k in range(0, len(x), 512)]
        scores.append(np.concatenate(out) if out else np.zeros(0, np.float32))
    return pbs, scores


def rethreshold(model_dir: Path, out_root: Path, version: str, *, fa_budget: float, seed: int = 1001,
                count: int = 60, hours: float = 10.0, variants: Sequence[str] = ("default", "bare"),
                key_path: Path | None = None, log: Any = print) -> tuple[Path, dict[str, Any]]:
    """Write ``out_root/version`` (the model of ``model_dir`` with the threshold chosen again); returns it
    and the validation figures."""
    from cloud.training.vitals_anomaly2 import alarm_metrics, choose_threshold

    if not (1001 <= seed and seed + len(variants) - 1 <= 1999):
        raise ValueError("validation seeds are 1001-1999")
    pbs: list[Any] = []
    scores: list[np.ndarray] = []
    for k, name in enumerate(variants):
        log(f"validation: {count} patients x {hours:g} h, seed {seed + k}, variant {name} {VARIANTS[name]}")
        p, s = validation_scores(model_dir, seed + k, count, hours, VARIANTS[name])
        pbs += p
        scores += s
    old = msgspec.json.decode((model_dir / "manifest.json").read_bytes(), type=Manifest)
    old_thr = float(old.metrics["threshold"])  # type: ignore[arg-type]
    sens0, fa0 = alarm_metrics(pbs, scores, old_thr)
    thr, sens, fa = choose_threshold(pbs, scores, fa_budget)
    log(f"threshold {old_thr:.2f}: sensitivity {sens0}, FA/patient-day {fa0:.3f}; "
        f"budget {fa_budget}: threshold {thr:.2f}, sensitivity {sens}, FA/patient-day {fa:.3f}")
    dst = Path(out_root) / version
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_dir / "model.tflite", dst / "model.tflite")
    m = msgspec.json.decode((model_dir / "manifest.json").read_bytes(), type=Manifest)
    m.version = version
    figures: dict[str, Any] = {
        "threshold": round(thr, 4), "threshold_from": old.version, "threshold_previous": old_thr,
        "val_fa_per_day_target": fa_budget, "val_alarm_sensitivity": None if sens is None else round(sens, 4),
        "val_false_alarms_per_patient_day": round(fa, 3), "threshold_val_seed": seed,
        "threshold_val_patients": len(pbs), "threshold_val_variants": ",".join(variants),
    }
    m.metrics = {**m.metrics, **figures}
    m.notes = (m.notes + f"; threshold chosen again from {old.version} with a false-alarm budget of {fa_budget} "
               f"per patient-day on validation patients (seed {seed}, variants {', '.join(variants)})")
    (dst / "manifest.json").write_bytes(encode_manifest(m))
    if key_path is not None:
        from wire.model_manifest import load_private_key, sign_model_dir

        sign_model_dir(dst, load_private_key(key_path))
    return dst, figures
