"""`pulsegate model threshold`: a vitals-anomaly threshold chosen again with a false-alarm budget on a few
validation patients, written as a new signed version beside the old one (same weights)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pulsegate.cli import main
from wire.model_manifest import load_public_key, verify_model_dir

REPO = Path(__file__).resolve().parents[1]
KEYS = REPO / "examples" / "keys"


def test_threshold_with_a_budget_is_a_new_signed_version(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          ) -> None:
    src = tmp_path / "vitals-anomaly" / "2.0.0"
    shutil.copytree(REPO / "models" / "vitals-anomaly" / "2.0.0", src)
    rc = main(["model", "threshold", str(src), "--version", "2.0.7", "--fa-budget", "0.0", "--patients", "2",
               "--hours", "2", "--key", str(KEYS / "dev-signing.key")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    dst = tmp_path / "vitals-anomaly" / "2.0.7"
    m = verify_model_dir(dst, [load_public_key(KEYS / "dev-signing.pub")])
    assert m.version == "2.0.7" and m.metrics["threshold"] == out["threshold"]
    assert m.metrics["threshold_previous"] == 0.77 and m.metrics["val_fa_per_day_target"] == 0.0
    assert float(out["val_false_alarms_per_patient_day"]) == 0.0 or out["threshold"] == 0.99
    assert (dst / "model.tflite").read_bytes() == (src / "model.tflite").read_bytes()
    assert main(["model", "threshold", str(src), "--version", "2.0.8", "--fa-budget", "0.1", "--seed", "9505",
                 "--patients", "1", "--hours", "1"]) == 2  # held-out seeds are refused
    assert "1001-1999" in capsys.readouterr().err
