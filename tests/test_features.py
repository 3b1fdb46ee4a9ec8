"""One feature spec: the gateway's streaming form and training's vectorised form give the same windows
(pulse-rate fallback and bucket alignment included), and a model with another spec is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from clinical import features as F
from clinical.anomaly import VitalsAnomalyModel
from clinical.bedstate import BedState
from clinical.litert import ModelError
from clinical.sample import Quality, Sample
from wire.model_manifest import generate_keypair, load_private_key, sign_model_dir

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "models" / "vitals-anomaly").iterdir())[-1]
PARAMS = ("heart_rate", "pulse_rate", "spo2", "resp_rate", "nibp_sys", "temperature")


def _series(seed: int, seconds: int, *, ecg: str, start: float) -> tuple[np.ndarray, dict[str, np.ndarray],
                                                                         dict[str, np.ndarray]]:
    """Samples every 2 s with random gaps and quality flags. ``ecg``: always, never, or lost (leads off
    for a stretch, then back), so the pulse-rate fallback starts and stops."""
    rng = np.random.default_rng(seed)
    t = start + np.arange(0, seconds, 2.0) + rng.uniform(0, 0.5, seconds // 2)
    n = len(t)
    values: dict[str, np.ndarray] = {}
    quality: dict[str, np.ndarray] = {}
    base = {"heart_rate": 80, "pulse_rate": 82, "spo2": 96, "resp_rate": 16, "nibp_sys": 120, "temperature": 37}
    for p in PARAMS:
        v = base[p] + np.cumsum(rng.normal(0, 0.3, n))
        q = np.where(rng.random(n) < 0.05, int(Quality.ARTIFACT), 0).astype(np.uint8)
        absent = rng.random(n) < 0.1
        if p == "nibp_sys":
            absent = np.arange(n) % 150 != 0  # one cuff reading every 5 minutes
        if p == "temperature":
            absent = np.arange(n) % 900 != 0
        gap = (t > start + seconds * 0.4) & (t < start + seconds * 0.4 + 400)  # a 6.7 min gap: carry runs out
        absent |= gap if p in ("spo2", "resp_rate") else False
        if p == "heart_rate":
            if ecg == "never":
                absent[:] = True
            elif ecg == "lost":
                absent |= (t > start + seconds * 0.6) & (t < start + seconds * 0.8)
        v = np.where(absent, np.nan, v)
        q = np.where(absent, 255, q).astype(np.uint8)
        values[p], quality[p] = v, q
    return t, values, quality


def _streamed(t: np.ndarray, values: dict[str, np.ndarray], quality: dict[str, np.ndarray]) -> tuple[
        list[float], list[np.ndarray]]:
    """Feed a BedState sample by sample (heart rate before pulse rate at equal times); the window after
    every bucket close."""
    st = BedState("b")
    got_t: list[float] = []
    got: list[np.ndarray] = []
    seen = 0
    for k, tk in enumerate(t):
        for p in PARAMS:
            q = int(quality[p][k])
            if q == 255:
                continue
            st.update(Sample("b", p, float(values[p][k]), "", float(tk), float(tk), Quality(q)))
        if st.buckets_filled > seen:
            seen = st.buckets_filled
            w = np.zeros((F.WINDOW, F.N_FEATURES), np.float32)
            st.window(w)
            got_t.append(float(tk))
            got.append(w)
    return got_t, got


@pytest.mark.parametrize("ecg", ["always", "never", "lost"])
@pytest.mark.parametrize("start", [1_767_225_600.0, 1_767_225_600.0 + 37.3, 912.7])  # aligned, mid-minute, monotonic
def test_streaming_and_vectorised_forms_agree(ecg: str, start: float) -> None:
    t, values, quality = _series(7, 5400, ecg=ecg, start=start)
    got_t, got = _streamed(t, values, quality)
    ends, rows = F.bucket_rows(t, values, quality)
    assert len(got) > 60
    # bucket edges are multiples of bucket_s on the samples' clock
    assert np.allclose(np.mod(ends, F.BUCKET_S), 0.0)
    for tk, w in zip(got_t, got, strict=True):
        k = int(np.searchsorted(ends, tk, side="right")) - 1  # the bucket before the one holding tk
        np.testing.assert_allclose(w, F.windows(rows, np.array([k]))[0], atol=1e-5)


def test_pulse_rate_fills_heart_rate_only_without_ecg() -> None:
    t, values, quality = _series(3, 3600, ecg="never", start=0.0)
    _, rows = F.bucket_rows(t, values, quality)
    hr = F.MODEL_PARAMS.index("heart_rate")
    mask = rows[:, len(F.MODEL_PARAMS) + hr]
    assert mask[1:].all()  # pulse rate stood in for the missing ECG heart rate in every bucket
    centre, spread = F.NORM[hr]
    assert abs(float(np.median(rows[1:, hr])) * spread + centre - 82) < 10  # the oximeter's rate, not 80
    without_pr = {k: v for k, v in values.items() if k != "pulse_rate"}
    _, rows2 = F.bucket_rows(t, without_pr, quality)
    assert not rows2[:, len(F.MODEL_PARAMS) + hr].any()


def test_spec_round_trips_and_names_differences() -> None:
    d = F.SPEC.to_manifest()
    assert json.loads(json.dumps(d)) == d
    assert F.FeatureSpec.from_manifest(d) == F.SPEC
    other = dict(d, norm=[[80.0, 25.0], *d["norm"][1:]], bucket_s=30.0)
    diff = F.SPEC.differences(F.FeatureSpec.from_manifest(other))
    assert [x.split(":")[0] for x in diff] == ["norm", "bucket_s"]
    with pytest.raises(ValueError, match="no feature spec"):
        F.check_manifest_spec({})
    with pytest.raises(ValueError, match="unknown key"):
        F.check_manifest_spec({**d, "scaling": "z"})
    with pytest.raises(ValueError, match="missing key"):
        F.check_manifest_spec({k: v for k, v in d.items() if k != "window"})
    with pytest.raises(ValueError, match=r"bucket_s: gateway 60\.0 != model 30\.0"):
        F.check_manifest_spec(other)


def test_shipped_model_carries_the_gateways_spec() -> None:
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    F.check_manifest_spec(manifest["features"])  # raises on any difference
    assert manifest["features"]["params"] == list(F.MODEL_PARAMS)


def _respec(tmp: Path, change: dict[str, object] | None, drop: bool = False) -> Path:
    d = tmp / "m"
    shutil.copytree(SHIPPED, d)
    manifest = json.loads((d / "manifest.json").read_text())
    if drop:
        del manifest["features"]
    else:
        manifest["features"].update(change or {})
    (d / "manifest.json").write_text(json.dumps(manifest))
    generate_keypair(tmp / "k", tmp / "k.pub")
    sign_model_dir(d, load_private_key(tmp / "k"))
    return d


def test_model_with_another_normalisation_is_refused_naming_it(tmp_path: Path) -> None:
    d = _respec(tmp_path, {"norm": [[75.0, 20.0], [95.0, 5.0], [16.0, 6.0], [120.0, 25.0], [37.0, 1.0]]})
    with pytest.raises(ModelError, match=r"norm: gateway .* != model \[\[75.0, 20.0\]"):
        VitalsAnomalyModel(d, trusted_keys=[tmp_path / "k.pub"])


def test_model_without_a_spec_is_refused(tmp_path: Path) -> None:
    d = _respec(tmp_path, None, drop=True)
    with pytest.raises(ModelError, match="no feature spec"):
        VitalsAnomalyModel(d, trusted_keys=[tmp_path / "k.pub"])
