"""`pulsegate edge run` as a real process: READY over $NOTIFY_SOCKET, watchdog, SIGTERM -> exit 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.localservices import Mosquitto, free_port
from firmware_bridge.emulators.pty import open_pty_emulator

pytestmark = pytest.mark.integration


def _recv_until(sock: socket.socket, want: bytes, timeout: float) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            msg = sock.recv(4096)
        except TimeoutError:
            break
        got.append(msg)
        if want in msg:
            break
    return got


def gateway_toml(gw: str, tmp_path: Path, http_port: int, bus_port: int) -> str:
    """A minimal gateway config: key file ``key`` in tmp_path, state under it, the given ports."""
    return f"""
[gateway]
id = "{gw}"
site = "t"
state_dir = "{tmp_path / 'state'}"
pseudonym_key = "key"
[http]
port = {http_port}
[local_bus]
port = {bus_port}
"""


def test_edge_process_notifies_serves_metrics_and_stops_cleanly(tmp_path: Path, broker: Mosquitto) -> None:
    (tmp_path / "key").write_text("k" * 32)
    port = free_port()
    emu = open_pty_emulator("masimo", "stable", seed=1)
    cfg = tmp_path / "edge.toml"
    cfg.write_text(gateway_toml("proc-gw", tmp_path, port, broker.port) + f"""
[[devices]]
driver = "masimo"
id = "m1"
bed = "b1"
port = "{emu.path}"
""")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen([sys.executable, "-m", "pulsegate", "edge", "run", "--config", str(cfg)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        got = _recv_until(notify, b"READY=1", 30)
        assert any(m.startswith(b"READY=1") for m in got), got
        # the watchdog is fed while the pipeline ticks (WATCHDOG_PID unset: any pid may ping)
        assert any(b"WATCHDOG=1" in m for m in _recv_until(notify, b"WATCHDOG=1", 5))
        deadline = time.monotonic() + 20
        samples = 0.0
        text = ""
        while time.monotonic() < deadline and samples < 3:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            for line in text.splitlines():
                if line.startswith("pulsegate_samples_total "):
                    samples = float(line.split()[1])
            time.sleep(0.5)
        assert samples >= 3, "samples from the pty emulator reached the pipeline"
        for metric in ("pulsegate_alarm_latency_seconds_count", "pulsegate_alarms_open{priority=\"high\"}",
                       "pulsegate_local_alarms_published_total", "pulsegate_beds"):
            assert metric in text, metric
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert json.load(r)["ok"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert any(b"STOPPING=1" in m for m in _recv_until(notify, b"STOPPING=1", 5))
        out = proc.stdout.read().decode() if proc.stdout else ""
        events = [json.loads(line)["event"] for line in out.splitlines() if line.startswith("{")]
        assert "tier_stopped" in events and "component_started" in events
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        emu.stop()
        notify.close()


def test_edge_process_refuses_bad_config_with_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text('[gateway]\nid = "g"\nsite = "s"\npseudonym_key = "k"\ncolour = "blue"\n')
    res = subprocess.run([sys.executable, "-m", "pulsegate", "edge", "run", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "edge.toml:5: gateway.colour: unknown key" in res.stderr
    # a missing secret file: clear error, no traceback
    cfg.write_text('[gateway]\nid = "g"\nsite = "s"\npseudonym_key = "missing-key"\n')
    res = subprocess.run([sys.executable, "-m", "pulsegate", "edge", "run", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "cannot read secret" in res.stdout and "Traceback" not in res.stdout + res.stderr
