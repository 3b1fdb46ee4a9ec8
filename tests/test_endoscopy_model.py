"""The shipped endoscopy-seg model: signature, real LiteRT inference on real Kvasir-SEG frames, eval command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from clinical.endoscopy.evaluate import evaluate
from clinical.endoscopy.segmodel import MODEL_NAME, load_verified, preprocess, probability_map
from edge.video.config import DEFAULT_MODELS_DIR, DEFAULT_TRUSTED_KEYS
from pulsegate.cli import main
from wire.model_manifest import ManifestError, load_public_key, model_versions, resolve_model_dir, verify_model_dir


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return resolve_model_dir(DEFAULT_MODELS_DIR, MODEL_NAME)


def read(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    assert img is not None, path
    return np.asarray(img)


def val_names(kvasir: Path, n: int) -> list[str]:
    return (kvasir / "val.txt").read_text().split()[:n]


def test_shipped_model_verifies_and_matches_manifest(model_dir: Path) -> None:
    runner, manifest = load_verified(model_dir, DEFAULT_TRUSTED_KEYS)
    assert manifest.name == "endoscopy-seg"
    assert runner.input_shape == tuple(manifest.inputs[0].shape[1:]) and runner.input_shape[0] in (256, 320)
    assert runner.input_dtype == np.int8  # int8 model; ModelRunner quantises float frames
    assert model_versions(DEFAULT_MODELS_DIR, MODEL_NAME)[0] == model_dir
    assert (model_dir / "MODEL_CARD.md").read_text().count("Kvasir-SEG") >= 2
    assert (model_dir / "model.tflite").stat().st_size < 4_000_000


def test_tampered_model_is_rejected(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "1.0.0"
    shutil.copytree(model_dir, bad)
    data = bytearray((bad / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0x01
    (bad / "model.tflite").write_bytes(bytes(data))
    keys = [load_public_key(k) for k in DEFAULT_TRUSTED_KEYS]
    with pytest.raises(ManifestError, match="sha256"):
        verify_model_dir(bad, keys)
    with pytest.raises(ManifestError):
        load_verified(bad, DEFAULT_TRUSTED_KEYS)
    # a manifest edited without re-signing fails the signature check
    shutil.copy(model_dir / "model.tflite", bad / "model.tflite")
    body = (bad / "manifest.json").read_text().replace('"endoscopy-seg"', '"endoscopy-sef"')
    (bad / "manifest.json").write_text(body)
    with pytest.raises(ManifestError, match="signature"):
        verify_model_dir(bad, keys)


def test_real_inference_on_kvasir_val_frames(model_dir: Path, kvasir: Path) -> None:
    runner, _ = load_verified(model_dir, DEFAULT_TRUSTED_KEYS, threads=1)
    names = val_names(kvasir, 6)
    side = runner.input_shape[0]
    batch = np.concatenate([preprocess(read(kvasir / "images" / n), (side, side)) for n in names])
    probs = probability_map(runner, batch)
    assert probs.shape == (6, side // 2, side // 2)
    assert float(probs.min()) >= 0.0 and float(probs.max()) <= 1.0
    dices = []
    for n, p in zip(names, probs, strict=True):
        truth = np.asarray(read(kvasir / "masks" / n, cv2.IMREAD_GRAYSCALE) >= 128)
        pred = cv2.resize(p, (truth.shape[1], truth.shape[0])) >= 0.5
        dices.append(2 * np.count_nonzero(pred & truth) / (np.count_nonzero(pred) + np.count_nonzero(truth)))
    assert float(np.mean(dices)) > 0.5, dices  # a trained model, not noise (full figures: MODEL_CARD.md)
    # one frame alone gives the same map as inside the batch (padding/batching does not leak)
    single = probability_map(runner, batch[:1])
    assert np.allclose(single[0], probs[0], atol=1e-6)


@pytest.fixture
def tiny_folder(kvasir: Path, tmp_path: Path) -> tuple[Path, Path]:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for n in val_names(kvasir, 4):
        shutil.copy(kvasir / "images" / n, images / n)
        shutil.copy(kvasir / "masks" / n, masks / n)
    # a frame without a polyp: an empty mask makes it a negative (specificity)
    first = val_names(kvasir, 1)[0]
    img = read(kvasir / "images" / first)
    cv2.imwrite(str(images / "plain.png"), np.full_like(img, (60, 90, 170)))
    cv2.imwrite(str(masks / "plain.png"), np.zeros(img.shape[:2], np.uint8))
    (images / "nomask.jpg").write_bytes((kvasir / "images" / first).read_bytes())  # skipped: no mask
    return images, masks


def test_eval_command_json(tiny_folder: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    images, masks = tiny_folder
    rc = main(["model", "eval", "endoscopy-seg", "--images", str(images), "--masks", str(masks), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["n"] == 5 and out["positives"] == 4 and out["negatives"] == 1 and out["skipped"] == 1
    for k in ("dice", "iou", "sensitivity", "specificity"):
        assert out[k] is not None and 0.0 <= out[k] <= 1.0
    assert out["dice"] > 0.5


def test_eval_specificity_null_without_negatives(model_dir: Path, kvasir: Path) -> None:
    runner, _ = load_verified(model_dir, DEFAULT_TRUSTED_KEYS)
    res = evaluate(runner, kvasir / "images", kvasir / "masks", val_names(kvasir, 2))
    fig = res.figures()
    assert fig["n"] == 2 and fig["specificity"] is None and fig["negatives"] == 0


def test_eval_missing_folder_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["model", "eval", "endoscopy-seg", "--images", str(tmp_path / "x"), "--masks", str(tmp_path)])
    assert rc == 2
    assert "not a directory" in capsys.readouterr().err
