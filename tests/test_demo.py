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
            if "stops everything" in line:
                break
        text = "".join(lines)
        state = Path(re.search(r"state in (\S+)\)", text).group(1))  # type: ignore[union-attr]
        nurse = re.search(r"nurse station:\s+(\S+?)/?\s", text).group(1)  # type: ignore[union-attr]
        api = re.search(r"cloud fleet dashboard:\s+(\S+?)/?\s", text).group(1)  # type: ignore[union-attr]
        local_port = int(re.search(r"local bus:\s+mqtt://127.0.0.1:(\d+)", text).group(1))  # type: ignore[union-attr]
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


def _descendants(root: int) -> set[int]:
    """Every live process below ``root`` (from /proc: pid -> parent pid)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parents[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - out
        out |= frontier
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_demo_sigterm_stops_everything_and_frees_every_port(tmp_path: Path) -> None:
    import queue
    import re
    import signal
    import threading
    import time

    from bench.localservices import free_port
    from runtime.ports import check_free

    http_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulsegate", "demo", "--http-port", str(http_port), "--no-video",
         "--state-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout or []], daemon=True).start()
    banner: list[str] = []
    try:
        deadline = time.monotonic() + 150
        while not any("stops everything" in ln for ln in banner):
            assert time.monotonic() < deadline and proc.poll() is None, (banner, proc.poll())
            try:
                banner.append(lines.get(timeout=1.0))
            except queue.Empty:
                pass
        text = "".join(banner)
        for what in ("nurse station:", "endoscopy live view:", "cloud fleet dashboard:", "gateway metrics:",
                     "cloud metrics:", "InfluxDB:"):
            assert what in text, text
        assert f"http://127.0.0.1:{http_port}/" in text
        ports = {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", text)}
        assert len(ports) >= 5, text  # nurse page, cloud API, InfluxDB, two brokers
        children = _descendants(proc.pid)
        assert len(children) >= 5, children  # edge, cloud, 2 mosquitto, influxd
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
        assert "demo stopped (SIGTERM)" in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = [pid for pid in children if _alive(pid)]
    assert left == [], [Path(f"/proc/{p}/cmdline").read_bytes() for p in left]
    for port in ports:
        check_free("127.0.0.1", port, "test")  # raises PortInUseError if anything still listens


def test_a_port_in_use_is_one_line_naming_the_flag_and_key(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "pulsegate", "demo", "--http-port", str(port), "--duration", "1",
                              "--no-video", "--state-dir", str(tmp_path / "demo")],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 1
        assert res.stderr.strip().splitlines() == [
            f"demo: cannot listen on 127.0.0.1:{port}: the port is already in use (another process listens there);"
            " choose another with --http-port (http.port in the demo's edge.toml)"]
        assert not (tmp_path / "demo").exists()  # nothing was started
        (tmp_path / "key").write_text("k" * 32)
        cfg = tmp_path / "edge.toml"
        cfg.write_text(f'[gateway]\nid = "g"\nsite = "s"\nstate_dir = "{tmp_path / "state"}"\npseudonym_key = "key"\n'
                       f'[http]\nport = {port}\n[local_bus]\nenabled = false\n')
        res = subprocess.run([sys.executable, "-m", "pulsegate", "edge", "run", "--config", str(cfg)],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 1, res.stderr
        assert res.stderr.strip().splitlines() == [
            f"pulsegate edge: cannot listen on 127.0.0.1:{port}: the port is already in use (another process listens"
            " there); choose another with http.port in the gateway config"]
        assert "Traceback" not in res.stdout + res.stderr
        res = subprocess.run([sys.executable, "-m", "pulsegate", "video", "run", "--source",
                              "examples/video/kvasir-demo.mp4", "--port", str(port)],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 1, res.stderr
        assert res.stderr.strip().splitlines()[-1] == (
            f"pulsegate video: cannot listen on 127.0.0.1:{port}: the port is already in use (another process"
            " listens there); choose another with --port")
        assert "Traceback" not in res.stdout + res.stderr
