"""Evaluation: bootstrap intervals, false findings per polyp-free frame, and per minute of a video or an
ordered frame folder after the gateway's smoothing, with every shipped model version (1.x and 2.x)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from clinical.endoscopy.evaluate import EvalResult
from clinical.endoscopy.segmodel import MODEL_NAME, OutputRoles, load_verified
from clinical.endoscopy.sequence import evaluate_sequence
from edge.video.config import DEFAULT_MODELS_DIR, DEFAULT_TRUSTED_KEYS
from pulsegate.cli import main
from wire.model_manifest import model_versions

VERSIONS = model_versions(DEFAULT_MODELS_DIR, MODEL_NAME)


def test_bootstrap_intervals_bracket_the_means() -> None:
    res = EvalResult(bootstrap=500)
    rng = np.random.default_rng(3)
    truth = np.zeros((16, 16), bool)
    truth[4:12, 4:12] = True
    for i in range(60):
        pred = truth.copy()
        pred[4 : 4 + int(rng.integers(0, 8)), 4:12] = False
        res.add(pred, truth, found=i % 10 != 0)  # sensitivity 0.9
    for i in range(40):
        res.add(np.zeros_like(truth), np.zeros_like(truth), found=i % 20 == 0)  # 2 false findings of 40
    fig = res.figures()
    lo, hi = fig["dice_ci95"]
    assert lo < fig["dice"] < hi and hi - lo < 0.2
    lo, hi = fig["sensitivity_ci95"]
    assert lo <= 0.9 <= hi
    assert fig["false_findings_per_frame"] == 0.05 and fig["specificity"] == 0.95
    lo, hi = fig["false_findings_ci95"]
    assert lo <= 0.05 <= hi
    assert res.figures() == fig  # fixed seed: the same intervals each time


def test_no_bootstrap_no_intervals() -> None:
    res = EvalResult(bootstrap=0)
    res.add(np.ones((4, 4), bool), np.ones((4, 4), bool), True)
    assert res.figures()["dice_ci95"] is None and res.figures()["false_findings_ci95"] is None


@pytest.fixture(scope="module")
def polyp_free_frames(tmp_path_factory: pytest.TempPathFactory, kvasir: Path) -> Path:
    """An ordered folder of 40 polyp-free crops of val.txt frames (a slow pan over mucosa)."""
    from cloud.training.endoscopy_data import load_frames, negative_crops, read_names

    names = read_names(kvasir / "val.txt")[20:60]
    xs, ys = load_frames(kvasir, names, 256)
    crops, _, _ = negative_crops(xs, ys, 256, seed=5, scales=(0.3, 0.4))
    assert len(crops) >= 40
    out = tmp_path_factory.mktemp("seq")
    for i, c in enumerate(crops[:40]):
        cv2.imwrite(str(out / f"f{i:04d}.png"), cv2.cvtColor(c, cv2.COLOR_RGB2BGR))
    return out


@pytest.mark.parametrize("model_dir", VERSIONS, ids=[p.name for p in VERSIONS])
def test_sequence_counts_smoothed_false_findings(model_dir: Path, polyp_free_frames: Path) -> None:
    runner, manifest = load_verified(model_dir, DEFAULT_TRUSTED_KEYS)
    roles = OutputRoles.of(runner)
    assert (roles.present is None) == (len(manifest.outputs) == 1)  # 1.x: map only; 2.x: map + present
    res = evaluate_sequence(runner, polyp_free_frames, fps=10.0)
    fig = res.figures()
    n = len(list(polyp_free_frames.iterdir()))
    assert fig["frames"] == n and fig["polyp_free_minutes"] == pytest.approx(n / 10 / 60, abs=1e-3)
    assert fig["false_findings"] == fig["findings_raised"] <= fig["frames_with_detection"]
    assert fig["false_findings_per_minute"] == pytest.approx(fig["false_findings"] / (n / 600), abs=1e-2)
    # a window of one frame raises on every isolated detection: smoothing can only lower the count
    raw = evaluate_sequence(runner, polyp_free_frames, fps=10.0, window=1, min_hits=1).figures()
    assert raw["findings_raised"] >= fig["findings_raised"]


def test_sequence_with_masks_judges_each_raise(polyp_free_frames: Path, tmp_path: Path) -> None:
    runner, _ = load_verified(VERSIONS[0], DEFAULT_TRUSTED_KEYS)
    masks = tmp_path / "masks"
    masks.mkdir()
    frames = sorted(polyp_free_frames.iterdir())
    for p in frames[: len(frames) // 2]:  # the second half has no mask: fed, not judged
        cv2.imwrite(str(masks / f"{p.stem}.png"), np.zeros((256, 256), np.uint8))
    fig = evaluate_sequence(runner, polyp_free_frames, masks, fps=30.0, window=1, min_hits=1).figures()
    assert fig["frames"] == len(frames)
    assert fig["polyp_free_minutes"] == pytest.approx(len(frames) // 2 / 30 / 60, abs=1e-3)
    assert fig["findings_raised"] == fig["false_findings"] + fig["unjudged_findings"]


def test_eval_command_on_a_video(polyp_free_frames: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "mucosa.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (320, 256))
    for p in sorted(polyp_free_frames.iterdir())[:25]:
        w.write(cv2.resize(cv2.imread(str(p)), (320, 256)))
    w.release()
    rc = main(["model", "eval", "endoscopy-seg", "--sequence", str(video), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    seq = out["sequence"]
    assert seq["frames"] == 25 and seq["fps"] == pytest.approx(25.0)
    assert seq["false_findings_per_minute"] is not None and seq["polyp_free_minutes"] == pytest.approx(1 / 60, abs=1e-3)


def test_eval_command_needs_something_to_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "eval", "endoscopy-seg"]) == 2
    assert "--sequence" in capsys.readouterr().err
    assert main(["model", "eval", "endoscopy-seg", "--sequence", str(tmp_path / "nope.mp4")]) == 2
    assert "no such video" in capsys.readouterr().err
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    assert main(["model", "eval", "endoscopy-seg", "--sequence", str(tmp_path / "junk.mp4")]) == 2


def test_heldout_sets_command(kvasir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cloud.training.endoscopy_data import read_names

    out = tmp_path / "sets"
    assert main(["model", "heldout-sets", "endoscopy-seg", "--data", str(kvasir), "--out", str(out),
                 "--video-seconds", "2"]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    crops = sorted((out / "negatives" / "images").iterdir())
    assert counts["negatives"] == len(crops) > 300 and counts["video_frames"] == 60
    val_stems = {Path(n).stem for n in read_names(kvasir / "val.txt")}
    assert {p.stem.rsplit("-neg", 1)[0] for p in crops} <= val_stems  # only val.txt frames, never train
    mask = cv2.imread(str(out / "negatives" / "masks" / crops[0].name), cv2.IMREAD_GRAYSCALE)
    assert mask is not None and not mask.any()
    assert len(read_names(out / "ood_val.txt")) == counts["ood_val"] < counts["ood"] == len(read_names(out / "ood.txt"))
    cap = cv2.VideoCapture(str(out / "polyp-free.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 1280
    cap.release()
    shifted = sorted((out / "shifted" / "images").iterdir())
    assert counts["shifted"] == len(shifted) == len(val_stems) and {p.stem for p in shifted} == val_stems
    assert len(list((out / "shifted" / "masks").iterdir())) == len(shifted)


def test_kvasir_folder_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """$PULSEGATE_KVASIR moves the default Kvasir-SEG folder (a clone anywhere can find the data); a
    folder without the data is named in the error."""
    from cloud.training.endoscopy_data import KVASIR_ENV, default_kvasir_dir

    monkeypatch.delenv(KVASIR_ENV, raising=False)
    assert default_kvasir_dir().parts[-3:] == ("shared", "data", "kvasir-seg")
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    monkeypatch.setenv(KVASIR_ENV, str(empty))
    assert default_kvasir_dir() == empty
    assert main(["model", "heldout-sets", "endoscopy-seg", "--out", str(tmp_path / "sets")]) == 2
    assert f"{empty}: no Kvasir-SEG val.txt" in capsys.readouterr().err
    given = tmp_path / "given"
    assert main(["model", "heldout-sets", "endoscopy-seg", "--data", str(given), "--out", str(tmp_path / "s")]) == 2
    assert f"{given}: no Kvasir-SEG val.txt" in capsys.readouterr().err


def test_scope_shift_is_deterministic_and_changes_the_frame(kvasir: Path) -> None:
    from cloud.training.endoscopy_shift import scope_shift

    name = sorted((kvasir / "images").iterdir())[0]
    rgb = cv2.cvtColor(cv2.imread(str(name)), cv2.COLOR_BGR2RGB)
    a, b, c = scope_shift(rgb, 1), scope_shift(rgb, 1), scope_shift(rgb, 2)
    assert a.shape == rgb.shape and a.dtype == np.uint8 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert 2.0 < float(np.abs(a.astype(np.float32) - rgb).mean()) < 60.0  # changed, still the same scene


def test_eval_command_on_polyp_free_frames_without_masks(polyp_free_frames: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A folder of healthy-mucosa frames needs no masks: --polyp-free gives what empty masks give."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for p in sorted(polyp_free_frames.iterdir())[:12]:
        cv2.imwrite(str(frames / f"{p.stem}.tif"), cv2.imread(str(p)))  # another hospital's format
    (frames / "broken.png").write_bytes(b"\x89PNG not really")
    masks = tmp_path / "empty-masks"
    masks.mkdir()
    for p in frames.glob("*.tif"):
        cv2.imwrite(str(masks / f"{p.stem}.png"), np.zeros((256, 256), np.uint8))
    base = ["model", "eval", "endoscopy-seg", "--images", str(frames), "--bootstrap", "0", "--json"]
    assert main([*base, "--polyp-free"]) == 0
    captured = capsys.readouterr()
    free = json.loads(captured.out.strip().splitlines()[-1])
    assert "skipped 1" in captured.err and "broken.png" in captured.err  # counted and named, not fatal
    assert main([*base, "--masks", str(masks)]) == 0
    with_masks = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert free["negatives"] == with_masks["negatives"] == 12 and free["positives"] == 0
    assert free["false_findings_per_frame"] == with_masks["false_findings_per_frame"] is not None
    assert main(base) == 2
    assert "--polyp-free" in capsys.readouterr().err
    assert main([*base, "--polyp-free", "--masks", str(masks)]) == 2
