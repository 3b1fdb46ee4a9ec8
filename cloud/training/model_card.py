"""MODEL_CARD.md for vitals-anomaly, written from the manifest and a held-out evaluation report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from wire.model_manifest import Manifest


def _f(v: Any) -> str:
    return "n/a" if v is None else str(v)


def _summary(src: dict[str, Any]) -> str:
    a, n = src["anomaly"], src["news2_5"]
    parts = []
    if a["sensitivity"] is not None and n["sensitivity"] is not None:
        sa, sn = a["sensitivity"], n["sensitivity"]
        word = "more" if sa > sn else "fewer" if sa < sn else "as many"
        parts.append(f"the model caught {word} deteriorations than NEWS2 >= 5 by the strict count "
                     f"({a['sensitivity']} vs {n['sensitivity']})")
    if a["false_alarms_per_bed_day"] is not None and n["false_alarms_per_bed_day"] is not None:
        parts.append(f"with {a['false_alarms_per_bed_day']} vs {n['false_alarms_per_bed_day']} false alarms per "
                     "bed-day")
    if a["lead_time_min_median"] is not None and n["lead_time_min_median"] is not None:
        parts.append(f"and a median lead time before the event of {a['lead_time_min_median']} vs "
                     f"{n['lead_time_min_median']} min")
    return ", ".join(parts) + ". It is meant to run beside NEWS2 and the thresholds, not to replace them."


def write_model_card(model_dir: Path, report: dict[str, Any]) -> Path:
    m = msgspec.json.decode((model_dir / "manifest.json").read_bytes(), type=Manifest)
    mt = m.metrics
    src = report["sources"]
    rows = []
    names = {"anomaly": "vitals-anomaly model", "news2_5": "NEWS2 >= 5 (urgent response)",
             "news2_7": "NEWS2 >= 7 (emergency)", "thresholds": "single-parameter thresholds (adult profile)"}
    for k, label in names.items():
        s = src[k]
        rows.append(f"| {label} | {_f(s['sensitivity'])} | {_f(s['sensitivity_active'])} | "
                    f"{_f(s['false_alarms_per_bed_day'])} | {_f(s['lead_time_min_median'])} |")
    vs = report["anomaly_vs_news2_5"]
    kinds = "\n".join(f"| {k} | {v['n']} | {v['anomaly']} | {v['news2_5']} |" for k, v in report["per_kind"].items())
    text = f"""# vitals-anomaly {m.version}: model card

**Trained and evaluated on SYNTHETIC data only.** No public ward dataset could be downloaded where this
model was built, so every patient it has seen, in training and in evaluation, came from the physiological
scenario generator `cloud/training/scenarios.py`. The figures below describe how it behaves on that
generator's patients; they say nothing about real patients. It is a development model: do not use it for
clinical decisions before it is retrained and validated on recorded ward data (`pulsegate replay` runs the
whole pipeline on such recordings).

## What it does

It reads a bed's last 60 minutes of numerics as 60 one-minute buckets (heart rate, SpO2, respiration rate,
systolic NIBP, temperature, each normalised, plus a 0/1 availability mask per parameter; see
`clinical/bedstate.py`) and outputs the probability that the patient is deteriorating. On the gateway it runs
beside NEWS2 and the threshold alarms, never instead of them: a score at or above the threshold
({mt.get('threshold')}) held for 2 minutes raises a medium-priority physiological alarm (source `anomaly`).
Beds are scored in one batched LiteRT invoke per tick.

- Input `windows` float32 [-1, 60, 10]; output `deterioration` float32 [-1, 1] (sigmoid).
- Architecture: flatten -> dense 32 (ReLU) -> dropout 0.2 -> dense 16 (ReLU) -> dense 1 (sigmoid),
  about 20 k parameters, {(model_dir / 'model.tflite').stat().st_size // 1024} KiB as .tflite (float32).

## Data

Generator (documented in `cloud/training/scenarios.py`): per-patient baselines (HR ~ N(78, 10), SpO2
~ N(96.5, 1.2), COPD patients with a 88-92 % target on oxygen, resp ~ N(16, 2), systolic ~ N(125, 15),
temperature ~ N(36.8, 0.25)); circadian rhythm; Ornstein-Uhlenbeck physiological variation and measurement
noise; benign confounders (activity bouts, brief sleep desaturations); motion artifacts (half of them
flagged by the "monitor"), SpO2 sensor-off periods, monitor gaps; intermittent NIBP (15-60 min) and
temperature (1-4 h). Deteriorations: sepsis, respiratory failure, haemorrhage, developing over 0.5-7 h with
random severity and course shape; the "event" is the end of the development.

- Training: {_f(mt.get('train_scenarios'))} scenarios of {_f(mt.get('hours_per_scenario'))} h, seed
  {_f(mt.get('train_seed'))}, default generator parameters, about half deteriorating.
- Validation (threshold choice only): {_f(mt.get('val_scenarios'))} scenarios, seed {_f(mt.get('val_seed'))}.
- Held-out test: {report['scenarios']} scenarios, seed {report['seed']}, and DIFFERENT generator parameters
  (`heldout_params`: 25 % more noise, 50 % more artifacts of which fewer are flagged, more sensor-off
  periods, activity bouts and desaturations, severities 0.5-1.3 instead of 0.6-1.2, courses of 0.75-7 h and
  shapes 1.0-2.6, 20 % COPD). Never used for training or for choosing anything.

## Method

Windows ending at every minute (negatives every 4th minute) are labelled 1 once the deterioration reached
15 % of its full effect, 0 for stable patients and before onset; the early part of a deterioration is left
out. Adam, binary cross-entropy with class weights, 10 epochs, batch 256. The alarm threshold is chosen on
the validation scenarios by simulating the gateway's alarm logic (2 min delay, hysteresis at 0.8 x
threshold, 10 min clear delay) at every minute: the lowest threshold with at most
{_f(mt.get('val_fa_per_day_target'))} false alarms per bed-day in stable time. Validation at that threshold:
sensitivity {_f(mt.get('val_alarm_sensitivity'))}, {_f(mt.get('val_false_alarms_per_bed_day'))} false
alarms per bed-day; window-level AUC {_f(mt.get('val_auc_window'))}.

## Held-out results (synthetic)

Measured with `pulsegate model eval vitals-anomaly` through the real gateway pipeline (`pulsegate replay`):
{report['deteriorating']} deteriorating patients, {report['stable_bed_days']} bed-days of stable time.
Sensitivity: an alarm raised between the deterioration's onset and its event ("active" also counts an alarm
raised earlier and still on). False alarms: alarms raised in stable time (stable patients, and deteriorating
ones before onset), per 24 h. Lead time: event time minus the first alarm in the span, median minutes.

| alarm source | sensitivity | sensitivity (active) | false alarms / bed-day | lead time (min) |
|---|---|---|---|---|
{chr(10).join(rows)}

In short, on these synthetic held-out patients: {_summary(src)}

Anomaly model vs NEWS2 >= 5 on the {vs['both_detected']} patients both detected: the model alarmed a median of
{_f(vs['anomaly_earlier_min_median'])} min earlier, and first in {_f(vs['anomaly_first_fraction'])} of them.
Either source (model or NEWS2 >= 5): sensitivity {_f(report['sensitivity_anomaly_or_news2_5'])}.

| deterioration | patients | detected by model | detected by NEWS2 >= 5 |
|---|---|---|---|
{kinds}

## Limits

- Synthetic data only (above). The generator encodes textbook patterns; real deteriorations are more varied,
  and real artifacts, nursing interventions (fluids, oxygen titration) and drugs (beta-blockers) are not modelled.
- No demographic, diagnosis or medication input; COPD appears only through the SpO2 target.
- It needs at least 10 minutes of a bed's data before it scores, and it looks back one hour only.
- Scores are not calibrated probabilities on real wards; the threshold was tuned for about
  {_f(mt.get('val_fa_per_day_target'))} false alarms per bed-day on synthetic validation patients.
- Float32 model; no quantisation was needed at its size.
"""
    path = model_dir / "MODEL_CARD.md"
    path.write_text(text)
    return path
