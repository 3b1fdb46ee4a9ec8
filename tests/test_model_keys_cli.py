"""`pulsegate model verify` / `sign` with a missing or wrong key file: one JSON error line, exit 1, no traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pulsegate.cli import main
from wire.model_manifest import ManifestError, load_private_key, load_public_key

REPO = Path(__file__).resolve().parents[1]
KEYS = REPO / "examples" / "keys"
MODEL = REPO / "models" / "vitals-anomaly" / "1.0.0"


@pytest.mark.parametrize(
    "key, expect",
    [
        ("missing.pub", "cannot read public key"),
        ("README.md", "is not a PEM public key"),
        ("dev-signing.key", "is not a PEM public key"),  # the private key given where the public one belongs
    ],
)
def test_verify_with_a_bad_key_file_is_one_clear_error(key: str, expect: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["model", "verify", str(MODEL), "--trusted-key", str(KEYS / key)])
    out = capsys.readouterr()
    assert rc == 1
    result = json.loads(out.out)
    assert result["ok"] is False and expect in result["error"]
    assert "Traceback" not in out.err and "https://" not in result["error"]


def test_verify_with_the_right_key_still_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "verify", str(MODEL), "--trusted-key", str(KEYS / "dev-signing.pub")]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_sign_with_a_bad_key_leaves_the_model_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m"
    shutil.copytree(MODEL, model)
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    for key, expect in (("missing.key", "cannot read private key"), ("dev-signing.pub", "not a PEM private key")):
        assert main(["model", "sign", str(model), "--key", str(KEYS / key)]) == 1
        assert expect in json.loads(capsys.readouterr().out)["error"]
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before


def test_key_loaders_raise_manifest_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "k.pem"
    garbage.write_bytes(b"\x00\xffnot pem")
    for loader in (load_public_key, load_private_key):
        with pytest.raises(ManifestError):
            loader(garbage)
        with pytest.raises(ManifestError):
            loader(tmp_path / "absent")
