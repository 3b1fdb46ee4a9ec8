"""Scenario generator, held-out scoring logic, and a tiny end-to-end training run (seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud.training.evaluation import score
from cloud.training.labels import buckets, labels
from cloud.training.scenarios import ARTIFACT, SENSOR_OFF, GeneratorParams, generate, heldout_params
from cloud.training.vitals_anomaly import simulate_alarms

ROOT = Path(__file__).resolve().parents[1]


def test_generator_is_deterministic_and_seed_dependent() -> None:
    gp = GeneratorParams(hours=3.0)
    a, b, c = generate(5, 1, gp), generate(5, 1, gp), generate(6, 1, gp)
    np.testing.assert_array_equal(a.values["heart_rate"], b.values["heart_rate"])
    assert not np.array_equal(np.nan_to_num(a.values["heart_rate"]), np.nan_to_num(c.values["heart_rate"]))
    assert heldout_params() != GeneratorParams()


@pytest.mark.parametrize(("kind", "param", "sign"), [("sepsis", "heart_rate", 1), ("sepsis", "nibp_sys", -1),
                                                     ("resp_failure", "spo2", -1), ("resp_failure", "resp_rate", 1),
                                                     ("haemorrhage", "nibp_sys", -1), ("haemorrhage", "heart_rate", 1)])
def test_deterioration_patterns_move_the_right_way(kind: str, param: str, sign: int) -> None:
    gp = GeneratorParams(hours=12.0, artifact_per_h=0, sensor_off_per_h=0, gap_per_h=0, severity=(1.0, 1.0))
    sc = generate(11, 2, gp, kind=kind)
    assert sc.onset_s is not None and sc.event_s is not None and sc.deteriorating
    v, t = sc.values[param], sc.t
    before = np.nanmean(v[(t < sc.onset_s) & (t > sc.onset_s - 3600)])
    after = np.nanmean(v[t >= sc.event_s - 2400])  # NIBP is intermittent: the last 40 min
    assert np.sign(after - before) == sign and abs(after - before) > 3


def test_artifacts_sensor_off_and_intermittent_measurements() -> None:
    gp = GeneratorParams(hours=6.0, artifact_per_h=10, sensor_off_per_h=2)
    sc = generate(3, 0, gp, kind="stable")
    assert (sc.quality["spo2"] & SENSOR_OFF).any() and np.isnan(sc.values["spo2"][sc.quality["spo2"] > 0]).any()
    assert ((sc.quality["heart_rate"] & ARTIFACT) > 0).any()
    nibp = np.count_nonzero(sc.quality["nibp_sys"] != 255)
    assert 6 <= nibp <= 25  # every 15-60 min over 6 h
    y = labels(sc, buckets(sc)[0])
    assert not y.any()


def test_simulated_alarm_logic_delay_hysteresis_clear() -> None:
    s = np.array([0.1, 0.95, 0.1, 0.95, 0.95, 0.95, 0.85, 0.85] + [0.1] * 12 + [0.95] * 3)
    assert simulate_alarms(s, 0.9) == [5, 22]


def test_score_counts_strict_and_active_detection() -> None:
    gp = GeneratorParams(hours=12.0)
    sick = generate(8, 0, gp, kind="sepsis")
    stable = generate(8, 1, gp, kind="stable")
    assert sick.onset_s is not None and sick.event_s is not None
    on = sick.start + sick.onset_s

    def rec(p: str, aid: str, t: float, ev: str, src: str = "anomaly", cond: str = "anomaly") -> dict[str, object]:
        return {"patient": p, "alarm_id": aid, "epoch": t, "event": ev, "kind": "physiological", "source": src,
                "condition": cond}

    records = [
        rec(sick.patient, "a1", on - 600, "raised"),  # before onset: a false alarm, still active at onset
        rec(sick.patient, "n1", on + 1800, "raised", "news2", "news2_medium"),
        rec(stable.patient, "a2", stable.start + 3600, "raised"), rec(stable.patient, "a2", stable.start + 4000,
                                                                       "cleared"),
    ]
    metrics, days, earlier, either, _ = score([sick, stable], records)  # type: ignore[arg-type]
    a = metrics["anomaly"]
    assert (a.detected, a.active_detected, a.false_alarms) == (0, 1, 2)
    n = metrics["news2_5"]
    assert n.detected == 1 and n.false_alarms == 0
    assert n.lead_min == [pytest.approx((sick.event_s - sick.onset_s - 1800) / 60)]
    assert either == 1 and earlier == [] and days == pytest.approx((sick.onset_s + stable.duration_s) / 86400)


@pytest.mark.slow
def test_tiny_training_exports_a_model_the_gateway_loads(tmp_path: Path) -> None:
    from clinical.anomaly import VitalsAnomalyModel
    from cloud.training.vitals_anomaly import train

    res = train(tmp_path, "0.0.1", seed=3, n_train=6, n_val=3, epochs=1, hours=6.0,
                key_path=ROOT / "examples" / "keys" / "dev-signing.key", log=lambda *a: None)
    m = VitalsAnomalyModel(res.model_dir, trusted_keys=[ROOT / "examples" / "keys" / "dev-signing.pub"])
    assert m.version == "0.0.1" and 0 < m.threshold < 1
    out = m.score_windows(np.zeros((5, 60, 10), np.float32))
    assert out.shape == (5,) and ((out >= 0) & (out <= 1)).all()
