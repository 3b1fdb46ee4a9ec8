"""`pulsegate demo --duration S --json` on this machine: real processes, real services."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.interop_fixtures import fhir_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_json_reports_points_counted_in_influxdb(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pulsegate", "demo", "--duration", "12", "--json", "--http-port", "0",
         "--no-video", "--state-dir", str(tmp_path), "--fhir-out", str(tmp_path / "fhir.json")],
        capture_output=True, text=True, timeout=180,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["samples_read"] > 40
    assert out["messages_uplinked"] > 0
    assert out["points_in_influxdb"] > 0
    # every protocol reached the cloud: Philips, Masimo, Nonin (ptys), HL7 (MLLP), BLE wearable (local MQTT)
    assert {"bed-01", "bed-02", "bed-05", "bed-07", "bed-08"} <= set(out["beds_in_influxdb"]), out
    # the gateway and cloud logged JSON lines, and no patient reference leaked into them
    for log in ("edge.log", "cloud.log"):
        lines = (tmp_path / log).read_text().splitlines()
        assert lines and all(json.loads(line)["ts"] for line in lines if line.startswith("{"))
        assert "DEMO-0" not in (tmp_path / log).read_text()
    # the configs it wrote are valid for check-config
    for cfg in ("edge.toml", "cloud.toml"):
        check = subprocess.run([sys.executable, "-m", "pulsegate", "check-config", str(tmp_path / cfg)],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stderr
    # --fhir-out: the FHIR export of the demo's data, valid for a real FHIR server's R4 validator
    bundle_text = (tmp_path / "fhir.json").read_text()
    assert "DEMO-0" not in bundle_text  # pseudonyms only
    bundle = json.loads(bundle_text)
    types = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    assert out["fhir"]["resources"] == len(bundle["entry"]) and types["Observation"] > 0 and types["Patient"] >= 5
    for server in fhir_server():
        batch = json.dumps({**bundle, "type": "batch"}).encode()  # each entry on its own, every one validated
        req = urllib.request.Request(server.url + "/", data=batch, headers={"Content-Type": "application/fhir+json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            answer = json.load(r)
        failed = [(e["response"]["status"], e["response"].get("outcome")) for e in answer["entry"]
                  if not e["response"]["status"].startswith("201")]
        assert not failed, failed[:3]


def test_demo_with_an_ambulance_shows_its_notice_on_the_board(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pulsegate", "demo", "--ambulance", "--duration", "42", "--json", "--http-port", "0",
         "--no-video", "--state-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=240,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    amb = json.loads(res.stdout.strip().splitlines()[-1])["ambulance"]
    assert amb["notice_sent"] and amb["notices_on_board"] == 1 and amb["link_cuts"] == 1, amb
    assert amb["board_revision"] >= 2  # updated through and after the tunnel
    assert amb["position"]["precision"].startswith("0.001")
    assert "EPCR-DEMO" not in (tmp_path / "ambulance.log").read_text()
