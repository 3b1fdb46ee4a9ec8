"""The exported endoscopy-seg graph (identity parts stripped, test-time flip, larger input), the presence
threshold chosen on the carve-out, and the operating point read from the manifest by the gateway."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clinical.endoscopy.segmodel import MODEL_NAME, OperatingPoint, OutputRoles, infer, load_verified
from clinical.litert import ModelError, ModelRunner
from edge.video.config import DEFAULT_MODELS_DIR, DEFAULT_TRUSTED_KEYS
from wire.model_manifest import Manifest, resolve_model_dir

ONE_X = Path(__file__).resolve().parents[1] / "models" / "endoscopy-seg" / "1.0.0" / "model.tflite"


def small_model(size: int = 64) -> object:
    from cloud.training.endoscopy_net import build_training_model

    return build_training_model(size, width=4)


def run(model: object, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m, p = model(x, training=False)  # type: ignore[operator]
    return np.asarray(m), np.asarray(p)


def test_identity_parts_are_stripped_and_the_outputs_stay_the_same() -> None:
    from cloud.training.endoscopy_export import identity_parts, serving_model
    from cloud.training.endoscopy_net import export_model

    m = small_model()
    assert all(identity_parts(m).values())  # zero-initialised projections and psi: identities
    x = np.random.default_rng(1).random((2, 64, 64, 3), dtype=np.float32)
    full, stripped = export_model(m), serving_model(m)
    assert len(stripped.layers) < len(full.layers) - 20
    for a, b in zip(run(full, x), run(stripped, x), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # parts that trained away from the identity stay in the graph
    rng = np.random.default_rng(2)
    for name in ("ctx2_pw", "att4_psi"):
        layer = m.get_layer(name)  # type: ignore[attr-defined]
        layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    parts = identity_parts(m)
    assert not parts["ctx2"] and not parts["att4"] and parts["ctx4"] and parts["att6"]
    for a, b in zip(run(full, x), run(serving_model(m), x), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_flip_averages_the_frame_and_its_mirror() -> None:
    from cloud.training.endoscopy_export import serving_model

    m = small_model()
    plain, flipped = serving_model(m), serving_model(m, flip=True)
    x = np.random.default_rng(3).random((3, 64, 64, 3), dtype=np.float32)
    a_map, a_pres = run(plain, x)
    b_map, b_pres = run(plain, np.ascontiguousarray(x[:, :, ::-1]))
    f_map, f_pres = run(flipped, x)
    assert f_map.shape == (3, 32, 32, 1) and f_pres.shape == (3, 1)
    np.testing.assert_allclose(f_map, (a_map + b_map[:, :, ::-1]) / 2, atol=1e-5)
    np.testing.assert_allclose(f_pres, (a_pres + b_pres) / 2, atol=1e-5)


def test_int8_export_at_a_larger_input_runs_in_litert(kvasir: Path, tmp_path: Path) -> None:
    from cloud.training.endoscopy_data import load_frames, read_names
    from cloud.training.endoscopy_export import serving_model
    from cloud.training.endoscopy_net import build_training_model, load_1x_weights
    from cloud.training.endoscopy_seg import _representative, to_int8_tflite

    if not ONE_X.exists():
        pytest.skip("endoscopy-seg 1.0.0 not in the repo")
    m = build_training_model(256, width=16)
    load_1x_weights(m, ONE_X)  # real weights: int8 calibration of a random network says little
    cal, _ = load_frames(kvasir, read_names(kvasir / "train.txt")[:8], 96)
    x = cal[:3].astype(np.float32) / 255.0
    for flip in (False, True):
        path = tmp_path / f"m{int(flip)}.tflite"
        serving = serving_model(m, flip=flip, input_size=96)
        path.write_bytes(to_int8_tflite(serving, _representative(cal)))
        runner = ModelRunner(path)
        assert runner.input_shape == (96, 96, 3) and runner.input_dtype == np.int8
        out = infer(runner, x, OutputRoles.of(runner))  # with flip, a batch of 3 is 6 inside the graph
        assert out.prob.shape == (3, 48, 48) and out.present is not None and out.present.shape == (3,)
        ref_map, _ = run(serving, x)
        assert float(np.abs(out.prob - ref_map[..., 0]).mean()) < 0.03  # int8 rounding only


def test_presence_rule_lowest_threshold_reaching_the_target_without_losing_frames() -> None:
    from cloud.training.endoscopy_threshold import choose

    rows = [{"t": 0.5, "found": 0.95, "false": 0.08}, {"t": 0.6, "found": 0.95, "false": 0.03},
            {"t": 0.7, "found": 0.94, "false": 0.015}, {"t": 0.8, "found": 0.90, "false": 0.0}]
    assert choose(rows) == 0.7  # 0.8 reaches 0 but loses 5 points of polyp frames
    rows[2]["false"] = 0.025  # nothing within the sensitivity bound reaches 2 %: the fewest false findings
    assert choose(rows) == 0.7
    assert choose([{"t": 0.5, "found": 1.0, "false": 0.0}, {"t": 0.6, "found": 1.0, "false": 0.0}]) == 0.5


def manifest_with(thresholds: dict[str, float]) -> Manifest:
    return Manifest(name=MODEL_NAME, version="9.0.0", sha256="", inputs=[], outputs=[], thresholds=thresholds)


def test_operating_point_from_the_manifest_unless_set() -> None:
    assert OperatingPoint.of(None) == OperatingPoint(0.5, 0.5)
    stored = manifest_with({"threshold": 0.45, "presence": 0.7})
    assert OperatingPoint.of(stored) == OperatingPoint(0.45, 0.7)
    assert OperatingPoint.of(stored, presence_threshold=0.6) == OperatingPoint(0.45, 0.6)
    assert OperatingPoint.of(manifest_with({})) == OperatingPoint(0.5, 0.5)  # 1.x and 2.0.0 manifests
    with pytest.raises(ModelError, match="presence"):
        OperatingPoint.of(manifest_with({"presence": 1.5}))


def test_the_gateway_uses_the_shipped_models_operating_point() -> None:
    from edge.video.pipeline import VideoPipeline

    runner, manifest = load_verified(resolve_model_dir(DEFAULT_MODELS_DIR, MODEL_NAME), DEFAULT_TRUSTED_KEYS)
    point = OperatingPoint.of(manifest)
    pipe = VideoPipeline("0", runner, lambda _: None, "endo-test")
    assert (pipe.threshold, pipe.presence_threshold) == (point.threshold, point.presence_threshold)
    pinned = VideoPipeline("0", runner, lambda _: None, "endo-test", presence_threshold=0.5)
    assert pinned.presence_threshold == 0.5
