"""Config validation: unknown keys and wrong types name the key and the line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from edge.config import EdgeConfig
from pulsegate.cli import main
from runtime.configbase import SecretError, read_secret
from runtime.configload import ConfigError, key_lines, loads
from runtime.logs import JsonFormatter, get_logger

GOOD = """
[gateway]
id = "ward7-gw1"
site = "stmarys"
pseudonym_key = "/etc/pulsegate/credentials/pseudonym-key"

[summaries]
interval_s = 30
"""


def test_good_config_is_frozen() -> None:
    cfg = loads(GOOD, EdgeConfig)
    assert cfg.gateway.id == "ward7-gw1" and cfg.summaries.interval_s == 30
    with pytest.raises(ValueError):
        cfg.gateway.id = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD + "\n[summaries2]\nx = 1\n", ":10: summaries2: unknown key"),
        (GOOD.replace("interval_s = 30", "interval_s = 30\nintervall = 5"), ":9: summaries.intervall: unknown key"),
        (GOOD.replace("interval_s = 30", 'interval_s = "often"'), ":8: summaries.interval_s: Input should be a valid number"),
        (GOOD.replace("interval_s = 30", "interval_s = 0.1"), ":8: summaries.interval_s: Input should be greater than or equal to 1"),
        (GOOD.replace('id = "ward7-gw1"', 'id = "ward7/gw1"'), ":3: gateway.id: Value error"),
        (GOOD.replace('site = "stmarys"\n', ""), ": gateway.site: required key is missing"),
        (GOOD + "\n[http]\nport = 70000\n", ":11: http.port: Input should be less than or equal to 65535"),
        ("[gateway\n", "TOML syntax error"),
    ],
)
def test_errors_name_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads(text, EdgeConfig, Path("edge.toml"))
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_key_lines_array_of_tables() -> None:
    text = '[[devices]]\nid = "a"\n[[devices]]\nid = "b"\nbaud = 3\n[x.y]\nz = 1\n'
    lines = key_lines(text)
    assert lines[("devices", 1, "baud")] == 5
    assert lines[("devices", 0, "id")] == 2
    assert lines[("x", "y", "z")] == 7


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "edge.toml"
    good.write_text(GOOD)
    assert main(["check-config", "--schema-only", str(good)]) == 0
    assert "valid edge config (types and references only)" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD + "bogus = 1\n")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "summaries.bogus: unknown key" in err and "bad.toml:9" in err
    cloud = tmp_path / "cloud.toml"
    cloud.write_text('[cloud]\nid = "c1"\n[api]\nport = "x"\n')
    assert main(["check-config", str(cloud)]) == 1
    assert "api.port" in capsys.readouterr().err
    neither = tmp_path / "n.toml"
    neither.write_text("[foo]\n")
    assert main(["check-config", str(neither)]) == 1


def test_secrets_from_file_and_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "k").write_text("s3cret-key-material\n")
    assert read_secret("k", base=tmp_path) == b"s3cret-key-material"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert read_secret("credential:k") == b"s3cret-key-material"
    with pytest.raises(SecretError, match="cannot read secret"):
        read_secret(str(tmp_path / "missing"))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(SecretError, match="CREDENTIALS_DIRECTORY"):
        read_secret("credential:k")


def test_logs_are_json_and_redact_patient_fields() -> None:
    record = logging.LogRecord("edge.test", logging.INFO, __file__, 1, "alarm_raised", None, None)
    record.fields = {"bed": "3", "patient": "MRN-998877", "mrn": "998877"}
    out = json.loads(JsonFormatter().format(record))
    assert out["event"] == "alarm_raised" and out["bed"] == "3" and out["component"] == "edge.test"
    assert out["patient"] == "<redacted>" and out["mrn"] == "<redacted>"
    assert "998877" not in json.dumps(out)
    get_logger("x").info("smoke", bed="1")  # the wrapper path works without handlers


@pytest.mark.parametrize("name", ["edge.toml", "cloud.toml", "ambulance.toml"])
def test_shipped_examples_are_valid(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / name
    assert main(["check-config", "--schema-only", str(path)]) == 0, capsys.readouterr().err


def test_check_config_opens_the_files_the_config_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The key, certificate and secret files are checked as the daemon would open them: a missing trusted
    key, a trusted key that is not a PEM public key, a short pseudonym key and a missing TLS file are each
    named with key and line (and never with the files' content); credential:NAME waits for the unit."""
    from wire.model_manifest import generate_keypair

    generate_keypair(tmp_path / "signing.key", tmp_path / "signing.pub")
    (tmp_path / "pseudonym-key").write_text("0123456789abcdef0123\n")
    (tmp_path / "not-a-key.pub").write_text("hello-not-pem\n")
    (tmp_path / "short").write_text("tooshort\n")
    good = tmp_path / "edge.toml"
    good.write_text(GOOD.replace('"/etc/pulsegate/credentials/pseudonym-key"', '"pseudonym-key"')
                    + f'\n[models]\ntrusted_keys = ["{tmp_path / "signing.pub"}"]\n')
    assert main(["check-config", str(good)]) == 0, capsys.readouterr().err
    assert "valid edge config" in capsys.readouterr().out
    cred = tmp_path / "cred.toml"
    cred.write_text(good.read_text().replace('"pseudonym-key"', '"credential:pseudonym-key"'))
    assert main(["check-config", str(cred)]) == 0, capsys.readouterr().err
    capsys.readouterr()

    bad = tmp_path / "bad.toml"
    bad.write_text(
        GOOD.replace('"/etc/pulsegate/credentials/pseudonym-key"', '"short"')
        + f'\n[models]\ntrusted_keys = ["{tmp_path / "signing.pub"}", "{tmp_path / "gone.pub"}", '
        f'"{tmp_path / "not-a-key.pub"}"]\n'
        + '\n[http]\nlisten = "0.0.0.0"\n[http.tls]\ncert = "missing.crt"\nkey = "credential:tls-key"\n')
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "names files this machine cannot use" in err
    assert "bad.toml:5: gateway.pseudonym_key: short: holds 8 bytes, at least 16 are needed" in err
    assert "bad.toml:11: models.trusted_keys.1: cannot read public key" in err and "gone.pub" in err
    assert "models.trusted_keys.2:" in err and "not a PEM public key" in err
    assert "models.trusted_keys.0" not in err
    assert "http.tls.cert: cannot read secret missing.crt" in err and "http.tls.key" not in err
    assert "tooshort" not in err and "hello-not-pem" not in err
    assert main(["check-config", "--schema-only", str(bad)]) == 0


def test_unknown_driver_and_bad_serial_settings_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "edge.toml"
    bad.write_text(
        GOOD
        + '\n[[devices]]\ndriver = "acme"\nid = "x"\nbed = "b"\nport = "/dev/ttyUSB0"\n'
        + '\n[[devices]]\ndriver = "masimo"\nid = "y"\nbed = "b"\nport = "/dev/ttyUSB1"\nbaudrate = 115200\n'
    )
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "edge.toml:10: devices.0: Input tag 'acme'" in err
    assert "edge.toml:16: devices.1: Value error" in err and "9600 baud" in err


BEDS = GOOD + '\n[[beds]]\nid = "bed-01"\n\n[[beds]]\nid = "bed-02"\n'


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("edge", GOOD + '\n[http]\nport = "8080"\n', "edge.toml:11: http.port: Input should be a valid integer"),
        ("edge", GOOD.replace("interval_s = 30", 'interval_s = 30\nraw = "no"'),
         "edge.toml:9: summaries.raw: Input should be a valid boolean"),
        ("edge", GOOD + '\n[local_bus]\nenabled = 1\n', "edge.toml:11: local_bus.enabled: Input should be a valid boolean"),
        ("cloud", '[cloud]\nid = "c1"\n\n[influx]\nraw_days = "30"\n',
         "cloud.toml:5: influx.raw_days: Input should be a valid integer"),
        ("cloud", '[cloud]\nid = 7\n', "cloud.toml:2: cloud.id: Input should be a valid string"),
        ("edge", BEDS + '\n[[devices]]\ndriver = "masimo"\nid = "rad8"\nbed = "bed-99"\nport = "/dev/ttyUSB0"\n',
         "edge.toml:19: devices.0.bed: bed 'bed-99' is not defined by any [[beds]] table (defined: bed-01, bed-02)"),
        ("edge", BEDS + '\n[[devices]]\ndriver = "hl7_mllp"\nid = "cs"\nbed = "bed-01"\n'
         'bed_map = { "7" = "bed-07" }\n', "edge.toml:20: devices.0.bed_map.7: bed 'bed-07' is not defined"),
        ("edge", BEDS + '\n[[devices]]\ndriver = "wearable_mqtt"\nid = "ble"\n\n[devices.devices]\n'
         '"C4:7C:8D:6A:12:34" = "bed-3"\n', "devices.0.devices.C4:7C:8D:6A:12:34: bed 'bed-3' is not defined"),
    ],
)
def test_check_config_strict_types_and_bed_references(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str,
                                                      text: str, expected: str) -> None:
    path = tmp_path / f"{kind}.toml"
    path.write_text(text)
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"invalid {kind} config" in err
    name = f"{kind}.toml"
    assert (str(path) + expected.removeprefix(name) if expected.startswith(name) else expected) in err, err


def test_strict_still_takes_ints_for_floats_and_strings_for_paths() -> None:
    cfg = loads(BEDS + '\n[models]\ndir = "models"\ntrusted_keys = ["a.pub"]\n', EdgeConfig)
    assert cfg.summaries.interval_s == 30.0 and isinstance(cfg.summaries.interval_s, float)
    assert cfg.models.dir == Path("models") and cfg.models.trusted_keys == (Path("a.pub"),)
    # devices on defined beds, or on none, pass; so does any bed when no [[beds]] table exists
    loads(BEDS + '\n[[devices]]\ndriver = "masimo"\nid = "rad8"\nbed = "bed-02"\nport = "/dev/ttyUSB0"\n', EdgeConfig)
    loads(GOOD + '\n[[devices]]\ndriver = "masimo"\nid = "rad8"\nbed = "bed-99"\nport = "/dev/ttyUSB0"\n', EdgeConfig)
