"""The shipped vitals-anomaly model through the one LiteRT wrapper, and train/serve feature parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clinical import bedstate as B
from clinical import features as F
from clinical.anomaly import VitalsAnomalyModel
from clinical.litert import ModelError
from clinical.model_input import inputs_for, n_channels
from clinical.sample import Quality, Sample
from cloud.training.labels import buckets
from cloud.training.scenarios import GeneratorParams, generate
from wire.model_manifest import ManifestError, newest_model_dir

ROOT = Path(__file__).resolve().parents[1]
PUB = ROOT / "examples" / "keys" / "dev-signing.pub"


SHIPPED = sorted(p.name for p in (ROOT / "models" / "vitals-anomaly").iterdir() if (p / "manifest.json").exists())


@pytest.fixture(scope="module", params=SHIPPED)
def model_dir(request: pytest.FixtureRequest) -> Path:
    """Every shipped version: a gateway still accepts 1.x (window input) beside 2.x (own baseline)."""
    d = ROOT / "models" / "vitals-anomaly" / str(request.param)
    assert newest_model_dir(ROOT / "models", "vitals-anomaly") is not None
    return d


def _bed_windows(sc_values: dict[str, np.ndarray], sc_quality: dict[str, np.ndarray], abs_t: np.ndarray,
                 every: int) -> tuple[list[float], list[np.ndarray]]:
    """Feed a scenario sample by sample into a BedState; collect the window after each bucket closes."""
    st = B.BedState("b")
    got_t: list[float] = []
    got: list[np.ndarray] = []
    seen = 0
    for k, t in enumerate(abs_t):
        for p in F.MODEL_PARAMS:
            q = sc_quality[p][k]
            if q == 255:
                continue
            st.update(Sample("b", p, float(sc_values[p][k]), "", float(t), float(t), Quality(int(q))))
        if st.buckets_filled > seen:
            seen = st.buckets_filled
            if seen % every == 0:
                w = np.zeros((F.WINDOW, F.N_FEATURES), np.float32)
                st.window(w)
                got_t.append(float(t))
                got.append(w)
    return got_t, got


def test_bedstate_windows_equal_training_features() -> None:
    sc = generate(77, 3, GeneratorParams(hours=3.0, sensor_off_per_h=2.0, gap_per_h=0.5), kind="sepsis")
    abs_t = sc.start + sc.t
    got_t, got = _bed_windows(sc.values, sc.quality, abs_t, every=7)
    ends, rows = buckets(sc)
    assert len(got) > 10
    for t, w in zip(got_t, got, strict=True):
        # a bucket closed by the first sample at or after its end: the window ends at the bucket before t's
        k = int(np.searchsorted(ends, t, side="right")) - 1
        ref = F.windows(rows, np.array([k]))[0]
        np.testing.assert_allclose(w, ref, atol=1e-5)


def test_shipped_model_loads_verified_and_scores_in_one_batch(model_dir: Path) -> None:
    m = VitalsAnomalyModel(model_dir, trusted_keys=[PUB])
    assert m.runner.input_shape == (F.WINDOW, n_channels(m.input_kind)) and 0 < m.threshold < 1
    gp = GeneratorParams(hours=12.0, artifact_per_h=0.0, sensor_off_per_h=0.0, gap_per_h=0.0)
    stable = [generate(4242, i, gp, kind="stable") for i in range(4)]
    sick = [generate(4242, 10 + i, gp, kind=k) for i, k in enumerate(("sepsis", "resp_failure", "haemorrhage"))]
    wins, is_sick = [], []
    for sc in stable + sick:
        ends, rows = buckets(sc)
        if sc.event_s is not None:
            k = int(np.searchsorted(ends - sc.start, sc.event_s)) - 1  # at the event: fully developed
        else:
            k = len(ends) - 1
        wins.append(inputs_for(m.input_kind, rows, np.array([k]))[0])  # the gateway's own input builder
        is_sick.append(sc.event_s is not None)
    before = m.invokes
    scores = m.score_windows(np.stack(wins))
    assert m.invokes == before + 1 and scores.shape == (len(wins),)
    stable_scores = scores[~np.array(is_sick)]
    sick_scores = scores[np.array(is_sick)]
    assert sick_scores.min() > stable_scores.max()
    assert (sick_scores >= m.threshold).all() and (stable_scores < m.threshold).all()


def test_score_beds_batches_all_beds_in_one_invoke(model_dir: Path) -> None:
    m = VitalsAnomalyModel(model_dir)
    beds = [B.BedState(f"b{i}") for i in range(37)]
    for i, b in enumerate(beds):
        for s in range(0, 1200, 5):
            b.update(Sample(b.bed, "heart_rate", 70.0 + i + s / 100, "/min", 60_000.0 + s, 0.0))
    out = m.score(beds)
    assert out.shape == (37,) and m.invokes == 1 and np.isfinite(out).all()


def test_tampered_model_is_refused(model_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    for f in ("model.tflite", "manifest.json", "manifest.sig"):
        (d / f).write_bytes((model_dir / f).read_bytes())
    blob = bytearray((d / "model.tflite").read_bytes())
    blob[-10] ^= 0xFF
    (d / "model.tflite").write_bytes(bytes(blob))
    with pytest.raises(ManifestError, match="sha256"):
        VitalsAnomalyModel(d, trusted_keys=[PUB])


def test_wrong_model_shape_is_refused(model_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.tflite").write_bytes((model_dir / "model.tflite").read_bytes())
    text = (model_dir / "manifest.json").read_text().replace('"threshold"', '"thresh_gone"')
    (d / "manifest.json").write_text(text)
    with pytest.raises(ModelError, match="threshold"):
        VitalsAnomalyModel(d)


def test_stage_from_config_raises_anomaly_alarm_for_deteriorating_patient_only(model_dir: Path,
                                                                                 tmp_path: Path) -> None:
    from clinical.alarms.profiles import ClinicalConfig
    from clinical.replay import replay
    from clinical.stage import ClinicalStage
    from cloud.training.scenarios import write_csv

    cfg = ClinicalConfig.model_validate({"anomaly": {"model_dir": str(model_dir), "trusted_keys": [str(PUB)]}})
    stage = ClinicalStage.from_config(cfg)
    assert stage.scorer is not None and stage.anomaly_threshold == stage.scorer.threshold
    gp = GeneratorParams(hours=10.0, artifact_per_h=0.0, sensor_off_per_h=0.0, gap_per_h=0.0, activity_per_h=0.2)
    stable = generate(31337, 0, gp, kind="stable")
    sick = generate(31337, 1, gp, kind="sepsis")
    f = tmp_path / "two.csv"
    write_csv([stable, sick], f, every_s=5.0)
    got: list[dict[str, object]] = []
    stats = replay(f, got.append, cfg, stage.scorer)
    assert stats.anomaly_invokes > 100
    anomaly = [a for a in got if a["source"] == "anomaly"]
    assert [a["patient"] for a in anomaly] == [sick.patient]
    assert sick.onset_s is not None and sick.event_s is not None
    t = float(anomaly[0]["epoch"]) - sick.start  # type: ignore[arg-type]
    assert sick.onset_s < t < sick.event_s
