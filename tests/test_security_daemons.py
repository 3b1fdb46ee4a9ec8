"""The real daemons behind their guards, as processes a user starts: `pulsegate edge run` over TLS with local
accounts made by `pulsegate user add`, and `pulsegate cloud run` with OIDC against a real local issuer. Every
route refuses anonymous callers; hostile requests are refused without a traceback; a listener that would be
open on the network does not start."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bench.localservices import Influxd, Mosquitto, free_port
from runtime.security.tls import write_selfsigned
from tests.oidc_issuer import OidcIssuer

pytestmark = pytest.mark.integration
PG = [sys.executable, "-m", "pulsegate"]


def add_user(users: Path, name: str, role: str, password: str, *extra: str) -> str:
    r = subprocess.run([*PG, "user", "add", name, "--role", role, "--users-file", str(users), "--password-stdin",
                        *extra], input=password + "\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*PG, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> list[dict[str, object]]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    out = proc.stdout.read().decode() if proc.stdout else ""
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


async def wait_up(url: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(url + "/healthz", ssl=False) as r:
                    if r.status in (200, 503):
                        return
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, f"{url} did not come up"
            await asyncio.sleep(0.2)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    (tmp_path / "key").write_text("k" * 32)
    state = tmp_path / "state"
    state.mkdir()
    users = state / "users.json"
    add_user(users, "nina", "nurse", "nurse-password-1", "--ward", "ward-7")
    add_user(users, "vic", "viewer", "viewer-password-1")
    out = add_user(users, "prom", "service", "service-password-1", "--token")
    token = out.split("(shown once): ")[1].split()[0]
    write_selfsigned(tmp_path / "cert.pem", tmp_path / "key.pem", ["127.0.0.1"])
    port = free_port()
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f"""
[gateway]
id = "sec-gw"
site = "ward-7"
state_dir = "{state}"
pseudonym_key = "key"
[http]
listen = "127.0.0.1"
port = {port}
[http.tls]
cert = "cert.pem"
key = "key.pem"
[auth]
metrics_from_loopback = false
[local_bus]
enabled = false
[[beds]]
id = "bed-01"
""")
    proc = start(["edge", "run", "--config", str(cfg)])
    try:
        yield f"https://127.0.0.1:{port}", token, proc
    finally:
        stop(proc)


async def test_edge_daemon_every_route_needs_login_over_tls(
        edge: tuple[str, str, subprocess.Popen[bytes]]) -> None:
    url, token, proc = edge
    await wait_up(url)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, connector=aiohttp.TCPConnector(ssl=False)) as s:
        for method, path in (("GET", "/"), ("GET", "/nurse/api/state"), ("GET", "/nurse/static/app.js"),
                             ("GET", "/nurse/ws"), ("POST", "/nurse/api/ack"), ("POST", "/nurse/api/silence"),
                             ("GET", "/metrics"), ("GET", "/anything-else")):
            async with s.request(method, url + path, json={}, allow_redirects=False) as r:
                assert r.status == 401, path
                assert r.headers["Strict-Transport-Security"].startswith("max-age")
        async with s.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200 and "pulsegate_audit_events_total" in await r.text()
        async with s.get(url + "/login", headers={"Host": "evil.example"}) as r:
            assert r.status == 421  # DNS rebinding
        async with s.post(url + "/auth/login", json={"user": "vic", "password": "viewer-password-1"}) as r:
            assert r.status == 200
            csrf = (await r.json())["csrf"]
            assert "Secure" in r.headers["Set-Cookie"] and "__Host-pg_nurse" in r.headers["Set-Cookie"]
        async with s.get(url + "/nurse/api/state") as r:
            assert r.status == 200 and [b["bed"] for b in (await r.json())["beds"]] == ["bed-01"]
        async with s.post(url + "/nurse/api/ack", json={"alarm_id": "x"}, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 403  # a viewer
        deep = "[" * 100_000 + "]" * 100_000
        async with s.post(url + "/auth/login", data=deep, headers={"Content-Type": "application/json"}) as r:
            assert r.status in (400, 413)
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await s.ws_connect(url + "/nurse/ws", origin="https://evil.example")
        assert e.value.status == 403
        ws = await s.ws_connect(url + "/nurse/ws", origin=url)
        assert json.loads(await ws.receive_str())["beds"][0]["bed"] == "bed-01"
        await ws.close()
        for _ in range(6):
            async with s.post(url + "/auth/login", json={"user": "nina", "password": "guess-password"}) as r:
                pass
        assert r.status == 429  # locked out
    reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]), ssl=_insecure_ctx())
    writer.write(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    await writer.drain()
    assert (await reader.readline()).split()[1].startswith(b"4")
    writer.close()
    events = stop(proc)
    assert proc.returncode == 0
    assert not [e for e in events if "exc" in e or e.get("level") == "error"], "no traceback, no error line"
    audit = [(e["action"], e["outcome"], e["user"]) for e in events if e.get("event") == "audit"]
    assert ("login", "ok", "vic") in audit and ("lockout", "locked", "nina") in audit
    assert ("request", "denied", "vic") in audit and ("websocket", "denied", "-") in audit
    assert [e for e in events if e.get("event") == "http_client_error"]  # the oversized header, as a warning


def _insecure_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_a_listener_open_to_the_network_does_not_start(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k" * 32)
    cfg = tmp_path / "edge.toml"
    port = free_port()
    base = f'[gateway]\nid = "g"\nsite = "s"\nstate_dir = "{tmp_path}"\npseudonym_key = "key"\n' \
           f'[local_bus]\nenabled = false\n[http]\nlisten = "0.0.0.0"\nport = {port}\n'
    cfg.write_text(base)
    res = subprocess.run([*PG, "edge", "run", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "not loopback" in res.stdout and "Traceback" not in res.stdout + res.stderr
    cfg.write_text(base + "[auth]\ninsecure_no_auth = true\n")
    proc = start(["edge", "run", "--config", str(cfg)])
    asyncio.run(wait_up(f"http://127.0.0.1:{port}", 60.0))  # started (the warning comes before the listener)
    events = stop(proc)
    loud = [e for e in events if e.get("event") == "insecure_listener"]
    assert loud and loud[0]["level"] == "error" and proc.returncode == 0


async def test_cloud_daemon_oidc_tokens_and_sites(tmp_path: Path, broker: Mosquitto, influx: Influxd,
                                                  unique: str) -> None:
    async with OidcIssuer() as iss:
        port = free_port()
        cfg = tmp_path / "cloud.toml"
        cfg.write_text(f"""
[cloud]
id = "c-{unique}"
state_dir = "{tmp_path / 'state'}"
[api]
port = {port}
[auth]
[auth.oidc]
issuer = "{iss.url}"
client_id = "{iss.client_id}"
[ingest]
host = "127.0.0.1"
port = {broker.port}
client_id = "ingest-{unique}"
group = "g{unique}"
deadletter_dir = "{tmp_path / 'dead'}"
[influx]
url = "{influx.url}"
database = "{unique}"
""")
        proc = await asyncio.create_subprocess_exec(*PG, "cloud", "run", "--config", str(cfg),
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_up(url)
            async with aiohttp.ClientSession() as s:
                for path in ("/", "/api/gateways", "/api/alarms", "/api/patients", "/static/dashboard.js"):
                    async with s.get(url + path, allow_redirects=False) as r:
                        assert r.status == 401, path
                good = {"Authorization": "Bearer " + iss.token(roles=["viewer"], sites=["stmarys"])}
                async with s.get(url + "/api/gateways", headers=good) as r:
                    assert r.status == 200
                other = OidcIssuer()
                bad = {"Authorization": "Bearer " + other.token(roles=["admin"], sites=["*"])}
                async with s.get(url + "/api/gateways", headers=bad) as r:
                    assert r.status == 401  # signed by a key this issuer does not publish
                wrong = {"Authorization": "Bearer " + iss.token(issuer="https://evil.example", roles=["admin"])}
                async with s.get(url + "/api/gateways", headers=wrong) as r:
                    assert r.status == 401
                async with s.get(url + "/metrics") as r:
                    assert r.status == 200  # Prometheus on the box (metrics_from_loopback)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
        events = [json.loads(x) for x in out.decode().splitlines() if x.startswith("{")]
        failed = [e for e in events if e.get("event") == "audit" and e.get("action") == "token"]
        assert len(failed) == 2 and all(e["outcome"] == "failed" for e in failed)
        assert proc.returncode == 0
