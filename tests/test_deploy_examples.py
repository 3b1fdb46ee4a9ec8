"""The sample deployment past one machine (examples/deploy/, examples/influxdb2/) stays consistent
with the code: configs validate, the worker unit verifies, broker ACLs and rollup tasks say what the
mosquitto ACL and the 1.x continuous queries say."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cloud.config import CloudConfig
from cloud.retention import ROLLUPS

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "examples" / "deploy"


@pytest.mark.parametrize("name", ["cloud-1.toml", "cloud-container.toml.in"])
def test_worker_configs_validate(name: str) -> None:
    text = (DEPLOY / "ingest" / name).read_text().replace("@WORKER@", "ingest-3")
    cfg = CloudConfig.model_validate(tomllib.loads(text))
    assert cfg.influx.api == "v2" and cfg.influx.token_file == "credential:influx-token"
    assert cfg.influx.username is None and cfg.ingest.group == "ingest"
    assert cfg.ingest.client_id.startswith("pg-") and cfg.api.listen == "127.0.0.1"


def test_worker_template_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    text = (DEPLOY / "ingest" / "pulsegate-ingest@.service").read_text()
    assert "cloud-%i.toml" in text and "LoadCredential=influx-token:" in text
    exe = Path(sys.executable).parent / "pulsegate"
    unit = tmp_path / "pulsegate-ingest@1.service"
    unit.write_text(text.replace("/opt/pulsegate/bin/pulsegate", str(exe if exe.exists() else sys.executable)))
    res = subprocess.run([analyze, "verify", "--man=no", "--recursive-errors=no", str(unit)],
                         capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (res.stdout + res.stderr).splitlines() if unit.name in ln]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr


def _mosquitto_patterns() -> set[str]:
    acl = (ROOT / "examples" / "mosquitto" / "pulsegate.acl").read_text()
    return {ln.split()[-1] for ln in acl.splitlines() if ln.startswith("pattern ")}


def test_cluster_broker_acls_match_the_mosquitto_acl() -> None:
    gateway_topics = {p.replace("%u", "GW") for p in _mosquitto_patterns()}
    vmq = (DEPLOY / "vernemq" / "vmq.acl").read_text()
    assert {ln.split()[-1].replace("%u", "GW") for ln in vmq.splitlines() if ln.startswith("pattern ")} \
        == gateway_topics
    emqx = (DEPLOY / "emqx" / "acl.conf").read_text().replace("${username}", "GW")
    assert gateway_topics <= set(re.findall(r'"(pg/(?:ed/)?v1/[^"]+)"', emqx))  # pg/ed/v1: the EDs' feed
    assert emqx.rstrip().endswith("{deny, all}.")


def test_influxdb2_tasks_roll_up_the_same_fields_as_the_1x_queries() -> None:
    for meas, select in ROLLUPS.items():
        flux = (ROOT / "examples" / "influxdb2" / "tasks" / f"{meas}_1h.flux").read_text()
        assert f'r._measurement == "{meas}"' in flux and f'value: "{meas}_1h"' in flux
        for fn, field, alias in re.findall(r"(SUM|MIN|MAX|MEAN)\((\w+)\) AS (\w+)", select):
            assert re.search(rf'field: "{field}", fn: {fn.lower()}\b', flux), (meas, fn, field)
            assert alias == field or f'name: "{alias}"' in flux
        assert 'to(bucket: "pulsegate_rollup")' in flux
