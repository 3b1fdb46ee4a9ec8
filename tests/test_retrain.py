"""`pulsegate model retrain vitals-anomaly` (issue 12, slice 2).

Unit: the gate's bootstrap decision, the split by patient and time, fleet buckets through the spec's own
builder. Integration, real parts: emulated fleet history (bench/fleet_history.py: per-minute summaries,
alarms, emulated nurse verdicts, clinical events) written into a real influxd through the ingest's point
mapping, read back by the retrain, real TensorFlow training on that small data, both models scored through
LiteRT on their .tflite files; a deliberately worse candidate (trained from scratch on shuffled labels) is
refused by the gate and nothing is signed; too little data is a clear message and no model.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.fleet_history import HistoryOptions, fleet_history, write_influx
from bench.localservices import Influxd
from clinical.features import MODEL_PARAMS, N_FEATURES, bucket_rows
from cloud.influx import InfluxWriter
from cloud.training.fleet_data import FleetData, PatientBuckets, load_fleet, patient_buckets, since_seconds
from cloud.training.fleet_eval import PatientFigures
from cloud.training.gate import GateConfig, gate
from cloud.training.retrain import RetrainOptions, TooLittleData, retrain, split

REPO = Path(__file__).resolve().parents[1]
ACTIVE = REPO / "models" / "vitals-anomaly" / "1.0.0"
V2 = REPO / "models" / "vitals-anomaly" / "2.0.0"


def _figs(det: list[int], fa: list[int]) -> list[PatientFigures]:
    return [PatientFigures(f"p{i}", 2, d, [], f, 1.0) for i, (d, f) in enumerate(zip(det, fa, strict=True))]


def test_gate_passes_equal_and_refuses_worse_with_reasons() -> None:
    same = _figs([2, 1, 2, 2, 1, 2], [0, 1, 0, 0, 1, 0])
    ok = gate(same, same)
    assert ok["pass"] and ok["sensitivity_delta"] == {"point": 0.0, "lower": 0.0, "upper": 0.0}
    worse_sens = gate(_figs([1, 0, 1, 1, 0, 1], [0, 1, 0, 0, 1, 0]), same)
    assert not worse_sens["pass"] and "sensitivity may be lower" in worse_sens["reasons"][0]
    noisier = gate(_figs([2, 1, 2, 2, 1, 2], [3, 4, 2, 3, 5, 2]), same)
    assert not noisier["pass"] and "false alarms may be higher" in noisier["reasons"][0]
    # a small gain is not enough when the interval is wide: one patient of six decides everything
    better_but_thin = gate(_figs([2, 2, 2, 2, 2, 2], [0, 0, 0, 0, 0, 3]), same, GateConfig(fa_margin=0.1))
    assert not better_but_thin["pass"] and better_but_thin["false_alarms_delta"]["upper"] > 0.1
    assert gate([], [])["reasons"] == ["no held-out episodes or stable time to compare on"]


def test_fleet_buckets_are_the_specs_rows() -> None:
    # one patient, 30 minutes: HR every minute, pulse rate only where HR is missing (minutes 10-14)
    minutes = {"heart_rate": {k: (80.0 + k, 1) for k in range(30) if not 10 <= k < 15},
               "pulse_rate": {k: (2 * 90.0, 2) for k in range(10, 15)}, "spo2": {k: (97.0 * 3, 3) for k in range(30)}}
    pb = patient_buckets("p", {p: {1000 + k: v for k, v in per.items()} for p, per in minutes.items()})
    assert pb is not None and pb.rows.shape == (30, N_FEATURES)
    t = (1000 + np.arange(30)) * 60.0
    hr = np.array([80.0 + k if not 10 <= k < 15 else np.nan for k in range(30)])
    values = {p: np.full(30, np.nan) for p in MODEL_PARAMS} | {"heart_rate": hr, "spo2": np.full(30, 97.0),
                                                              "pulse_rate": np.where(np.isnan(hr), 90.0, np.nan)}
    ends, rows = bucket_rows(t, values, {p: np.zeros(30, np.uint8) for p in values})
    assert np.array_equal(pb.ends, ends) and np.allclose(pb.rows, rows)
    assert np.isclose(pb.rows[12, 0], (90.0 - 80.0) / 20.0)  # the pulse-rate fallback, as on the gateway


def test_split_by_patient_and_time() -> None:
    pats = [PatientBuckets(f"p{i}", 1e9 + i * 3 * 3600 + np.arange(1, 6 * 60 + 1) * 60.0, np.zeros((360, 10)),
                           np.zeros(360, np.int8), np.ones(360, np.float32)) for i in range(10)]
    s = split(pats, 0.3)
    held = {p.patient for p in s.heldout}
    assert held == {"p7", "p8", "p9"} and not held & {p.patient for p in s.train + s.val}
    assert all(p.ends[-1] <= s.cutoff for p in s.train + s.val)  # no training minute from the held-out period
    assert len(s.val) == 1 and s.dropped == 0


def test_since_forms() -> None:
    assert since_seconds("30d") == 30 * 86400 and since_seconds("90m") == 5400
    with pytest.raises(ValueError, match="30d"):
        since_seconds("a month")


async def _fleet(influx: Influxd, db: str, per_gateway: int) -> FleetData:
    history = fleet_history(HistoryOptions(gateways=3, patients_per_gateway=per_gateway, hours=8), time.time())
    w = InfluxWriter(influx.url, db)
    try:
        assert await write_influx(w, history) > 1000
        return await load_fleet(w, since_seconds("30d"))
    finally:
        await w.close()


@pytest.mark.integration
async def test_a_worse_candidate_is_refused_and_nothing_is_signed(tmp_path: Path, influx: Influxd,
                                                                   unique: str) -> None:
    fleet = await _fleet(influx, unique, 8)
    assert len(fleet.patients) == 24 and fleet.verdicts and fleet.events
    rng = np.random.default_rng(3)
    opts = RetrainOptions(out_dir=tmp_path / "out", active_dir=ACTIVE, key_path=REPO / "examples" / "keys" /
                          "dev-signing.key", synthetic=0, epochs=1, cold_start=True)
    report = retrain(fleet, opts, log=lambda s: None, transform=lambda y: rng.permutation(y))
    assert report["train_patients"] >= 4 and report["heldout_patients"] >= 3
    assert report["labels_from_feedback"] > 0 and report["labels_from_events"] > 0
    for side in ("candidate", "active"):
        assert {"sensitivity", "false_alarms_per_patient_day", "lead_min_median"} <= set(report[side])
    assert report["active"]["version"] == "1.0.0" and report["candidate"]["version"] == "1.1.0"
    assert report["candidate"]["episodes"] == report["active"]["episodes"] > 0  # the same held-out data
    g = report["gate"]
    assert g["pass"] is False and g["reasons"] and not report["signed"]
    refused = Path(report["model_dir"])
    assert refused.name == "1.1.0.refused" and (refused / "model.tflite").exists()
    assert not (refused / "manifest.sig").exists() and not (tmp_path / "out" / "1.1.0").exists()
    assert json.loads((refused / "retrain.json").read_text())["gate"]["pass"] is False


@pytest.mark.integration
async def test_too_little_data_is_a_message_not_a_model(tmp_path: Path, influx: Influxd, unique: str) -> None:
    fleet = await _fleet(influx, unique, 1)  # three patients
    with pytest.raises(TooLittleData, match="too little fleet data"):
        retrain(fleet, RetrainOptions(out_dir=tmp_path / "out", active_dir=ACTIVE), log=lambda s: None)
    assert not (tmp_path / "out").exists()
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "pulsegate", "model", "retrain", "vitals-anomaly", "--influx",
                          influx.url, "--database", unique, "--since", "30d", "--out", str(tmp_path / "out"),
                          "--active", str(ACTIVE), "--json"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 2, out.stderr
    body = json.loads(out.stdout)
    assert body["error"] == "too_little_data" and "training patients" in body["message"]
    assert not (tmp_path / "out").exists()


def test_gate_is_paired_on_the_same_patients() -> None:
    # the patients differ a lot from each other; two models that agree on every one of them have a difference
    # interval of exactly zero, however wide each model's own interval is
    det, fa = [0, 2, 1, 2, 0, 2, 1, 2], [0, 3, 0, 1, 4, 0, 0, 2]
    same = gate(_figs(det, fa), _figs(det, fa))
    assert same["paired"] and same["pass"]
    assert same["sensitivity_delta"]["lower"] == 0.0 == same["sensitivity_delta"]["upper"]
    lo, hi = same["intervals"]["active"]["sensitivity"]
    assert hi - lo > 0.3
    # a candidate that misses an episode the active catches on two patients: its own interval overlaps the
    # active's (two independent intervals could not tell them apart), the paired difference refuses it
    worse = gate(_figs([0, 1, 1, 1, 0, 2, 1, 2], fa), _figs(det, fa))
    _, c_hi = worse["intervals"]["candidate"]["sensitivity"]
    assert c_hi > lo and not worse["pass"] and worse["discordant"] == {"episodes_only_candidate": 0,
                                                                       "episodes_only_active": 2}


def test_warm_start_takes_the_active_2x_models_weights_and_refuses_another_network() -> None:
    pytest.importorskip("tensorflow")
    from clinical.anomaly import VitalsAnomalyModel
    from clinical.model_input import inputs_for
    from cloud.training.anomaly2_warm import WarmStartError, load_active_weights
    from cloud.training.patient_buckets import ward_patient_buckets
    from cloud.training.vitals_anomaly2 import build_model
    from cloud.training.ward_scenarios import WardParams

    net = build_model(3)
    done = load_active_weights(net, V2)
    assert done["start"] == "warm start from the active model (2.0.0)" and done["warm_start_max_logit_diff"] <= 1e-3
    # checked independently on a generated ward patient through the gateway's own LiteRT wrapper
    pb = ward_patient_buckets(77, 1, WardParams(hours=3.0))[0]
    x = inputs_for("baseline", pb.rows, np.arange(10, len(pb.ends)))
    want = VitalsAnomalyModel(V2).score_windows(x)
    got = 1.0 / (1.0 + np.exp(-np.asarray(net(x, training=False))[:, 0]))
    assert np.allclose(got, want, atol=1e-4)
    with pytest.raises(WarmStartError, match="another architecture"):
        load_active_weights(build_model(3), ACTIVE)  # 1.0.0 is another network: a cold start, stated


@pytest.mark.integration
async def test_a_2x_fleet_warm_start_candidate_is_gated_paired_and_a_worse_one_refused(
        tmp_path: Path, influx: Influxd, unique: str) -> None:
    import msgspec

    from wire.model_manifest import Manifest, load_private_key, verify_model_dir

    fleet = await _fleet(influx, unique, 16)
    key = REPO / "examples" / "keys" / "dev-signing.key"
    report = retrain(fleet, RetrainOptions(out_dir=tmp_path / "out", active_dir=V2, key_path=key, synthetic=40,
                                           epochs=3), log=lambda s: None)
    assert report["active"]["version"] == "2.0.0" and report["candidate"]["version"] == "2.1.0"
    assert report["candidate"]["episodes"] == report["active"]["episodes"] > 0  # the same held-out patients
    g = report["gate"]
    assert g["paired"] and {"lower", "upper", "point"} <= set(g["sensitivity_delta"]) and g["intervals"]["level"]
    assert report["synthetic"]["pre_training"].startswith("the active model's own")
    d = Path(report["model_dir"])
    m = msgspec.json.decode((d / "manifest.json").read_bytes(), type=Manifest)
    assert m.features is not None and m.features["input"] == "baseline" and "FLEET" in m.training_data
    assert m.metrics["start"] == "warm start from the active model (2.0.0)" and "pre-trained" in m.training_data
    assert report["signed"] == g["pass"]  # signed exactly when the gate passed
    if g["pass"]:
        verify_model_dir(d, [load_private_key(key).public_key()])
    # a deliberately worse 2.x candidate (from scratch on shuffled labels) is refused on the same patients
    rng = np.random.default_rng(5)
    worse = retrain(fleet, RetrainOptions(out_dir=tmp_path / "worse", active_dir=V2, key_path=key, synthetic=0,
                                          epochs=1, cold_start=True), log=lambda s: None,
                    transform=lambda y: rng.permutation(y))
    assert worse["gate"]["pass"] is False and not worse["signed"] and worse["model_dir"].endswith(".refused")
    assert worse["gate"]["discordant"]["episodes_only_active"] > 0
