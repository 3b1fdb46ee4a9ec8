"""vitals-anomaly 2.x: the one input builder (gateway = training), the bucket trainer on tiny data, and the
exported .tflite served by LiteRT through the real gateway class, accepted and refused by its feature spec."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from clinical import features as F
from clinical.anomaly import VitalsAnomalyModel
from clinical.bedstate import BedState
from clinical.litert import ModelError
from clinical.model_input import build, explain, inputs_for, n_channels
from clinical.sample import Quality, Sample
from cloud.training.patient_buckets import PatientBuckets, check_buckets, ward_labels, ward_patient_buckets
from cloud.training.ward_scenarios import WardParams

ROOT = Path(__file__).resolve().parents[1]
KEY = ROOT / "examples" / "keys" / "dev-signing.key"


def _sample(param: str, v: float, t: float) -> Sample:
    return Sample(bed="b1", patient="p1", parameter=param, value=v, unit="", quality=Quality.VALID,
                  device_time=t, recv_mono=t, recv_wall=t)


def test_gateway_and_training_build_the_same_input_with_the_own_baseline() -> None:
    rng = np.random.default_rng(3)
    st = BedState("b1")
    t0 = 1_700_000_000.0
    ts = np.arange(0.0, 150 * 60.0, 5.0)  # 150 minutes: buckets leave the window and feed the baseline
    hr = 70 + np.where(ts > 120 * 60, 30.0, 0.0) + rng.normal(0, 2, len(ts))
    spo2 = 97 - np.where(ts > 120 * 60, 5.0, 0.0) + rng.normal(0, 0.5, len(ts))
    got = []
    for k, t in enumerate(ts):
        before = st.buckets_filled
        st.update(_sample("heart_rate", float(hr[k]), t0 + t))
        st.update(_sample("spo2", float(spo2[k]), t0 + t))
        if st.buckets_filled != before:
            w = np.zeros((F.WINDOW, F.N_FEATURES), np.float32)
            st.window(w)
            x = np.zeros((F.WINDOW, n_channels("baseline")), np.float32)
            build("baseline", w, st.baseline, x)
            got.append((st.buckets_filled - 1, x))
    values = {"heart_rate": hr, "spo2": spo2}
    quality = {p: np.zeros(len(ts), np.int8) for p in values}
    _ends, rows = F.bucket_rows(t0 + ts, values, quality)
    # the streaming form closes a bucket when the next sample arrives: bucket index k = buckets_filled - 1
    at = np.array([k for k, _ in got])
    xs = inputs_for("baseline", rows, at)
    np.testing.assert_allclose(np.stack([x for _, x in got]), xs, atol=1e-5)
    last = xs[-1]
    assert last[-1, F.N_FEATURES + 0] * F.NORM[0][1] > 20  # HR 30 above the own baseline of the first 2 h
    assert np.all(last[:, F.N_FEATURES + 2] == 0)  # resp never measured: no deviation
    assert "HR +" in explain("baseline", last) and "own baseline" in explain("baseline", last)


def test_ward_labels_and_patient_buckets_validate() -> None:
    ends = np.arange(0, 100 * 60, 60.0) + 60
    y = ward_labels(ends, onset=30 * 60.0, half=60 * 60.0, end=80 * 60.0)
    assert (y[ends < 30 * 60] == 0).all() and (y[ends >= 80 * 60] == 1).all() and (y == -1).any()
    with pytest.raises(ValueError, match="labels"):
        check_buckets(PatientBuckets("x", ends, np.zeros((len(ends), F.N_FEATURES), np.float32),
                                     np.full(len(ends), 2, np.int8)))
    with pytest.raises(ValueError, match="do not match"):
        check_buckets(PatientBuckets("x", ends, np.zeros((3, F.N_FEATURES), np.float32), y))


def test_fit_from_buckets_tiny_then_litert_serves_it_and_spec_gates_it(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    from cloud.training.vitals_anomaly2 import fit_from_buckets, write_model_dir

    wp = WardParams(hours=3.0, deteriorating_fraction=0.7, kind_weights=(0.4, 0.3, 0.3, 0, 0, 0))
    data = ward_patient_buckets(5, 6, wp)
    assert all(pb.rows.shape[1] == F.N_FEATURES for pb in data)
    assert any((pb.labels == 1).any() for pb in data)
    res = fit_from_buckets(data[:4], data[4:], seed=1, epochs=1, log=lambda _m: None)
    assert 0.0 < res.threshold < 1.0 and res.metrics["calibration"] == "platt"
    d = write_model_dir(res, tmp_path / "vitals-anomaly", "2.0.99", training_data="SYNTHETIC test",
                        key_path=KEY)
    m = VitalsAnomalyModel(d, trusted_keys=[KEY.with_suffix(".pub")])
    assert m.input_kind == "baseline" and m.runner.input_shape == (F.WINDOW, n_channels("baseline"))
    # the .tflite gives what Keras gives, on the gateway's own input
    x = inputs_for("baseline", data[0].rows, np.arange(10, 20))
    np.testing.assert_allclose(m.score_windows(x), res.model.predict(x, verbose=0)[:, 0], atol=1e-4)
    st = BedState("b1")
    p = m.score([st])
    assert p.shape == (1,) and 0.0 <= float(p[0]) <= 1.0
    assert isinstance(m.explain(0), str)
    # a model reading an input this gateway cannot build, or another baseline, is refused by its spec
    man = json.loads((d / "manifest.json").read_text())
    for change, word in (({"input": "spectrogram"}, "input"), ({"baseline_tau": 60.0}, "baseline_tau"),
                         ({"window": 30}, "window")):
        bad = tmp_path / f"bad-{word}"
        bad.mkdir()
        (bad / "model.tflite").write_bytes((d / "model.tflite").read_bytes())
        (bad / "manifest.json").write_text(json.dumps({**man, "features": {**man["features"], **change}}))
        with pytest.raises(ModelError, match=word):
            VitalsAnomalyModel(bad)


def test_a_1x_manifest_without_the_input_key_still_means_the_window() -> None:
    d = F.SPEC.to_manifest()
    old = {k: v for k, v in d.items() if k not in ("input", "baseline_tau")}
    assert F.check_manifest_spec(old).input == "window"
    assert F.check_manifest_spec(replace(F.SPEC, input="baseline").to_manifest()).input == "baseline"
