"""`pulsegate demo --duration S --json` on this machine: real processes, real services."""

from __future__ import annotations

import http.cookiejar
import json
import re
import socket
import subprocess
import sys
import urllib.error
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


def _mqtt_connack(port: int, username: str | None = None, password: str | None = None) -> int:
    """CONNACK return code of an MQTT 3.1.1 CONNECT (0 accepted, 4 bad user name or password, 5 not authorised)."""
    def s(v: str) -> bytes:
        return len(v.encode()).to_bytes(2, "big") + v.encode()

    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)
    body = s("MQTT") + bytes([4, flags]) + (60).to_bytes(2, "big") + s("anon-probe")
    body += (s(username) if username else b"") + (s(password) if password else b"")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        ack = sock.recv(4)
    return ack[3]


def test_demo_logs_in_refuses_anonymous_everywhere_and_removes_its_state() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "pulsegate", "demo", "--duration", "25", "--http-port", "0",
                             "--no-video"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        text = "".join(lines)
        state = Path(re.search(r"state in (\S+)\)", text).group(1))  # type: ignore[union-attr]
        nurse = re.search(r"nurse station:\s+(\S+?)/?\n", text).group(1)  # type: ignore[union-attr]
        api = re.search(r"cloud API:\s+(\S+?)/?\s", text).group(1)  # type: ignore[union-attr]
        local_port = int(re.search(r"local bus: mqtt://127.0.0.1:(\d+)", text).group(1))  # type: ignore[union-attr]
        influx = re.search(r"InfluxDB:\s+(\S+) ", text).group(1)  # type: ignore[union-attr]
        accounts = {m[0]: (m[1], m[3]) for m in re.findall(r"^\s+([a-z-]+)\s+(\w+)\s+(password|API token) (\S+)$",
                                                             text, re.M)}
        assert {r for r, _ in accounts.values()} == {"nurse", "charge_nurse", "viewer", "clinician", "admin",
                                                     "service"}
        assert state.is_dir() and (state / "credentials" / "pseudonym-key").exists()

        def call(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
                 opener: urllib.request.OpenerDirector | None = None) -> tuple[int, bytes]:
            req = urllib.request.Request(url, data=data, headers=headers or {})
            try:
                with (opener or urllib.request.build_opener()).open(req, timeout=10) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.read()

        for url in (nurse + "/nurse/api/state", nurse + "/", api + "/api/gateways", api + "/"):
            assert call(url)[0] == 401, url  # anonymous
        jar = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        json_h = {"Content-Type": "application/json"}
        status, body = call(nurse + "/auth/login", json.dumps({"user": "viewer", "password": accounts["viewer"][1]})
                            .encode(), json_h, jar)
        assert status == 200
        csrf = json.loads(body)["csrf"]
        assert call(nurse + "/nurse/api/state", opener=jar)[0] == 200
        assert call(nurse + "/nurse/api/ack", b'{"alarm_id": "x"}', {**json_h, "X-CSRF-Token": csrf}, jar)[0] == 403
        assert call(api + "/api/gateways", opener=jar)[0] == 401  # a session is per listener
        status, _ = call(api + "/auth/login", json.dumps({"user": "viewer", "password": accounts["viewer"][1]})
                         .encode(), json_h, jar)
        assert status == 200 and call(api + "/api/gateways", opener=jar)[0] == 200
        token = accounts["nurse-call"][1]
        assert call(nurse + "/nurse/api/state", headers={"Authorization": f"Bearer {token}"})[0] == 200
        assert _mqtt_connack(local_port) == 5  # an anonymous client on the local bus: not authorised
        assert _mqtt_connack(local_port, "nurse-call", "guess") in (4, 5)
        status, _ = call(influx + "/write?db=pulsegate", b"evil,bed=x v=1")
        assert status == 401  # InfluxDB: authentication required
        assert proc.wait(timeout=150) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not state.exists()  # the temporary folder, pseudonymisation key included, is gone


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
