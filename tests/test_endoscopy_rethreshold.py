"""`pulsegate model threshold-endoscopy`: the presence threshold chosen again on the train.txt carve-out by
the rule fixed in advance, and a new signed version with the same model file (tiny synthetic data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from clinical.endoscopy.segmodel import MODEL_NAME, OperatingPoint
from cloud.training.endoscopy_threshold import choose_fewest
from edge.video.config import DEFAULT_MODELS_DIR, DEFAULT_TRUSTED_KEYS
from pulsegate.cli import main
from wire.model_manifest import load_public_key, resolve_model_dir, verify_model_dir

REPO = Path(__file__).resolve().parents[1]
KEY = REPO / "examples" / "keys" / "dev-signing.key"
SOURCE = DEFAULT_MODELS_DIR / MODEL_NAME / "2.0.1"


def test_fewest_rule_trades_at_most_max_loss_of_polyp_frames() -> None:
    rows = [{"t": 0.5, "found": 0.90, "false": 0.033}, {"t": 0.6, "found": 0.90, "false": 0.016},
            {"t": 0.7, "found": 0.891, "false": 0.008}, {"t": 0.75, "found": 0.883, "false": 0.008},
            {"t": 0.9, "found": 0.83, "false": 0.0}]
    assert choose_fewest(rows) == 0.7  # 0.9 has none but loses 7 points; 0.75 ties on false and loses 1.7
    assert choose_fewest(rows, max_loss=0.02) == 0.7  # the lowest among equals
    assert choose_fewest(rows, max_loss=0.1) == 0.9
    assert choose_fewest(rows, max_loss=0.0) == 0.6


def _tiny_kvasir(root: Path, n: int = 12) -> Path:
    """Kvasir-SEG layout: images/, masks/, train.txt, val.txt, bboxes.json (one wide original per split)."""
    rng = np.random.default_rng(5)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    names, boxes = [], {}
    for i in range(n):
        img = np.clip(rng.normal((60, 80, 170), 25, (96, 112, 3)), 0, 255).astype(np.uint8)
        mask = np.zeros((96, 112), np.uint8)
        cv2.circle(mask, (int(rng.integers(35, 75)), int(rng.integers(30, 65))), int(rng.integers(10, 22)), 255, -1)
        img[mask > 0] = (90, 120, 210)
        name = f"f{i:02d}.jpg"
        cv2.imwrite(str(root / "images" / name), img)
        cv2.imwrite(str(root / "masks" / name), mask)
        names.append(name)
        boxes[f"f{i:02d}"] = {"height": 96, "width": 800 if i in (0, n - 1) else 112, "bbox": []}
    (root / "train.txt").write_text("\n".join(names[: n - 4]) + "\n")
    (root / "val.txt").write_text("\n".join(names[n - 4 :]) + "\n")
    (root / "bboxes.json").write_text(json.dumps(boxes))
    return root


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    if not SOURCE.is_dir():
        pytest.skip("endoscopy-seg 2.0.1 not shipped")
    models = tmp_path / "models" / MODEL_NAME
    shutil.copytree(SOURCE, models / "2.0.1")
    return models / "2.0.1", _tiny_kvasir(tmp_path / "kvasir")


def test_prints_the_grid_and_the_choice_without_writing(setup: tuple[Path, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    src, data = setup
    assert main(["model", "threshold-endoscopy", str(src), "--data", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["t"] for r in out["grid"]] == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert out["presence"] == choose_fewest(out["grid"]) and out["presence_previous"] == 0.6
    assert out["frames"] == 2  # 8 training names minus the wide one: 7 // 4 = 1 carved out, plain + re-rendered
    assert sorted(p.name for p in src.parent.iterdir()) == ["2.0.1"]
    assert main(["model", "threshold-endoscopy", str(src), "--data", str(data)]) == 0
    text = capsys.readouterr().out
    assert "<- chosen" in text and f"chosen presence threshold: {out['presence']:.2f}" in text


def test_writes_a_signed_version_with_the_same_model_file(setup: tuple[Path, Path],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    src, data = setup
    args = ["model", "threshold-endoscopy", str(src), "--data", str(data), "--version", "2.0.2", "--key", str(KEY)]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    dst = src.parent / "2.0.2"
    assert out["new_model_dir"] == str(dst) and resolve_model_dir(src.parent.parent, MODEL_NAME) == dst
    manifest = verify_model_dir(dst, [load_public_key(k) for k in DEFAULT_TRUSTED_KEYS])
    assert (dst / "model.tflite").read_bytes() == (src / "model.tflite").read_bytes()
    assert OperatingPoint.of(manifest) == OperatingPoint(0.5, out["presence"])
    assert manifest.version == "2.0.2" and manifest.metrics["presence_from"] == "2.0.1"
    assert manifest.metrics["val_n"] == 4 and out["heldout"]["val"]["n"] == 4  # figures on the tiny val.txt
    assert manifest.metrics["train_seconds"] == json.loads((src / "manifest.json").read_text())["metrics"][
        "train_seconds"]  # training figures are the source's: no training happened
    card = (dst / "MODEL_CARD.md").read_text()
    assert card.startswith("# endoscopy-seg 2.0.2") and f"raised from 0.60 to {out['presence']:.2f}" in card
    assert "research and educational use" in card and "## Training (as 2.0.1" in card
    assert "- Operating point" not in card  # 2.0.1's operating-point bullet is not carried over
    assert main(args) == 2  # the version exists now: not overwritten
    assert "exists" in capsys.readouterr().err
    assert main([*args[:-4], "--version", "2.0.0", "--key", str(KEY)]) == 2
    assert "not newer" in capsys.readouterr().err
    assert not (src.parent / "2.0.0").exists()


def test_bad_input_is_a_clear_error(setup: tuple[Path, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    src, data = setup
    assert main(["model", "threshold-endoscopy", str(src), "--data", str(tmp_path / "none")]) == 2
    assert "train.txt" in capsys.readouterr().err
    (src / "manifest.json").write_text((src / "manifest.json").read_text().replace('"2.0.1"', '"2.0.9"', 1))
    assert main(["model", "threshold-endoscopy", str(src), "--data", str(data)]) == 2
    assert "signature" in capsys.readouterr().err
