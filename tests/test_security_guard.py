"""The guard on a real aiohttp listener: anonymous and wrong-role requests refused, cross-site requests
refused, CSRF, lockout, session expiry, DNS rebinding, hostile bodies and headers, WebSocket limits."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from runtime.security.config import AuthSection, TlsSection
from runtime.security.sessions import SessionStore
from runtime.security.tls import write_selfsigned
from tests.security_fixtures import PASSWORDS, serve


class Clock:
    def __init__(self) -> None:
        self.t = 5000.0

    def __call__(self) -> float:
        return self.t


async def test_anonymous_requests_are_refused_or_sent_to_login(tmp_path: Path) -> None:
    async with serve(tmp_path) as srv, srv.client() as s:
        r = await s.get(srv.url, headers={"Accept": "text/html"}, allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == "/login?next=/"
        for path in ("api/state", "live", "metrics", "secret", "ws"):
            r = await s.get(srv.url + path)
            assert r.status == 401, path
        r = await s.post(srv.url + "api/ack", json={"alarm_id": "a"})
        assert r.status == 401 and not srv.acks
        r = await s.get(srv.url + "login")
        assert r.status == 200 and "login.js" in await r.text()
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "no-referrer"
        assert "Strict-Transport-Security" not in r.headers  # plain HTTP on loopback
        r = await s.get(srv.url + "healthz")
        assert r.status == 200


async def test_roles_decide_and_refusals_are_audited(tmp_path: Path) -> None:
    async with serve(tmp_path) as srv:
        async with srv.client() as s:
            csrf = await srv.login(s, "vic")
            assert (await s.get(srv.url + "api/state")).status == 200
            r = await s.post(srv.url + "api/ack", json={"alarm_id": "a"},
                             headers={"X-CSRF-Token": csrf, "Origin": srv.origin})
            assert r.status == 403 and not srv.acks  # a viewer cannot acknowledge
            assert (await s.get(srv.url + "live")).status == 403
            assert (await s.get(srv.url + "secret")).status == 403  # unlisted route: admin only
        denied = srv.sec.guard.audit.find("request", "denied")
        assert {e.detail["path"] for e in denied} == {"/api/ack", "/live", "/secret"}
        assert all(e.user == "vic" for e in denied)
        async with srv.client() as s:
            csrf = await srv.login(s, "nina")
            r = await s.post(srv.url + "api/ack", json={"alarm_id": "a", "seconds": 60},
                             headers={"X-CSRF-Token": csrf, "Origin": srv.origin})
            assert r.status == 200 and srv.acks == [{"by": "nina", "seconds": 60.0}]
            for bad in (1e9, "Infinity", 600):  # a nurse may silence 120 s at most
                r = await s.post(srv.url + "api/ack", json={"seconds": bad}, headers={"X-CSRF-Token": csrf})
                assert r.status == 400
            r = await s.post(srv.url + "api/ack", data='{"seconds": Infinity}',
                             headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
            assert r.status == 400
        async with srv.client() as s:
            csrf = await srv.login(s, "carl")
            r = await s.post(srv.url + "api/ack", json={"seconds": 600}, headers={"X-CSRF-Token": csrf})
            assert r.status == 200  # a charge nurse may
        async with srv.client() as s:
            await srv.login(s, "ada")
            assert (await s.get(srv.url + "secret")).status == 200
        async with srv.client() as s:
            r = await s.post(srv.url + "auth/login", json={"user": "prom", "password": PASSWORDS["prom"]})
            assert r.status == 403  # service accounts use tokens


async def test_cross_site_and_csrf_less_state_changes_are_refused(tmp_path: Path) -> None:
    async with serve(tmp_path) as srv, srv.client() as s:
        csrf = await srv.login(s, "nina")
        r = await s.post(srv.url + "api/ack", json={}, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
        assert r.status == 403
        r = await s.post(srv.url + "api/ack", json={}, headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"})
        assert r.status == 403
        r = await s.post(srv.url + "api/ack", json={}, headers={"Origin": srv.origin})
        assert r.status == 403 and "CSRF" in await r.text()
        r = await s.post(srv.url + "api/ack", json={}, headers={"X-CSRF-Token": "guess", "Origin": srv.origin})
        assert r.status == 403
        r = await s.post(srv.url + "api/ack", data="alarm_id=x", headers={"X-CSRF-Token": csrf,
                         "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 415
        assert not srv.acks
        r = await s.post(srv.url + "auth/login", json={"user": "nina", "password": PASSWORDS["nina"]},
                         headers={"Origin": "http://evil.example"})
        assert r.status == 403  # no login CSRF either
        reasons = [e.detail["reason"] for e in srv.sec.guard.audit.find("request", "denied")]
        assert reasons.count("cross-site") == 3 and reasons.count("csrf") == 2


async def test_repeated_bad_logins_lock_out_and_are_audited(tmp_path: Path) -> None:
    async with serve(tmp_path) as srv, srv.client() as s:
        for _ in range(5):
            r = await s.post(srv.url + "auth/login", json={"user": "nina", "password": "not-her-password"})
            assert r.status == 401 and (await r.json())["error"] == "wrong user name or password"
        r = await s.post(srv.url + "auth/login", json={"user": "nina", "password": PASSWORDS["nina"]})
        assert r.status == 429 and int(r.headers["Retry-After"]) > 200  # locked: even the right password
        r = await s.post(srv.url + "auth/login", json={"user": "nobody", "password": "whatever-pass"})
        assert r.status == 401  # an unknown name answers like a wrong password
        audit = srv.sec.guard.audit
        assert len(audit.find("login", "failed")) == 6 and len(audit.find("lockout", "locked")) == 1
        assert audit.find("login", "locked")[0].user == "nina"
        assert all(e.client == "127.0.0.1" for e in audit.events)


async def test_sessions_expire_and_logout_ends_them(tmp_path: Path) -> None:
    clock = Clock()
    async with serve(tmp_path, sessions=SessionStore(absolute_s=3600, idle_s=60, clock=clock)) as srv:
        async with srv.client() as s:
            await srv.login(s, "nina")
            assert (await s.get(srv.url + "api/state")).status == 200
            clock.t += 61
            assert (await s.get(srv.url + "api/state")).status == 401  # idle
        async with srv.client() as s:
            csrf = await srv.login(s, "nina")
            r = await s.get(srv.url + "auth/me")
            me = await r.json()
            assert me["user"] == "nina" and me["csrf"] == csrf and me["may_act"] and me["max_silence_s"] == 120
            r = await s.post(srv.url + "auth/logout", headers={"X-CSRF-Token": csrf})
            assert r.status == 200
            assert (await s.get(srv.url + "api/state")).status == 401
        async with srv.client() as s:  # a password change ends the sessions made with the old one
            await srv.login(s, "vic")
            users = srv.sec.guard.users
            assert users is not None
            users.passwd("vic", "a new password")
            users.save()
            users._checked = 0.0
            assert (await s.get(srv.url + "api/state")).status == 401


async def test_tokens_for_machines(tmp_path: Path) -> None:
    async with serve(tmp_path) as srv, srv.client() as s:
        auth = {"Authorization": f"Bearer {srv.token}"}
        assert (await s.get(srv.url + "metrics", headers=auth)).status == 200
        assert (await s.get(srv.url + "api/state", headers=auth)).status == 200
        r = await s.post(srv.url + "api/ack", json={}, headers=auth)
        assert r.status == 403  # a service token reads, never acts
        r = await s.get(srv.url + "metrics", headers={"Authorization": "Bearer pgt_0123456789abcdef_" + "x" * 43})
        assert r.status == 401
        assert srv.sec.guard.audit.find("token", "failed")


async def test_metrics_from_loopback_without_token_when_configured(tmp_path: Path) -> None:
    auth = AuthSection(users_file=tmp_path / "users.json")
    async with serve(tmp_path, auth) as srv, srv.client() as s:
        assert (await s.get(srv.url + "metrics")).status == 200
        assert (await s.get(srv.url + "api/state")).status == 401


async def test_dns_rebinding_hostile_bodies_and_headers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with serve(tmp_path) as srv, srv.client() as s:
        r = await s.get(srv.url + "login", headers={"Host": "evil.example"})
        assert r.status == 421
        r = await s.get(srv.url + "login", headers={"Host": "localhost"})
        assert r.status == 200
        csrf = await srv.login(s, "nina")
        with caplog.at_level(logging.INFO):
            deep = "[" * 100_000 + "]" * 100_000
            r = await s.post(srv.url + "api/ack", data=deep,
                             headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
            assert r.status == 400 and "deeper" in await r.text()
            r = await s.post(srv.url + "api/ack", data=b"x" * (2 * 1024 * 1024),
                             headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
            assert r.status == 413
            host, port = srv.url.split("//")[1].rstrip("/").split(":")
            for _ in range(3):  # an oversized header: a 4xx, one warning line, no traceback
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(b"GET /login HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
                await writer.drain()
                status = await reader.readline()
                assert status.split()[1].startswith(b"4")
                writer.close()
            r = await s.get(srv.url + "login?" + "q" * 20_000)
            assert 400 <= r.status < 500
        assert sum(srv.sec.server_log.client_errors.values()) >= 4
        warnings = [r for r in caplog.records if r.getMessage() == "http_client_error"]
        assert 1 <= len(warnings) <= 2 and all(r.levelname == "WARNING" for r in warnings)
        assert not [r for r in caplog.records if r.exc_info or r.exc_text or r.levelno >= logging.ERROR]


async def test_websocket_origin_frame_size_and_per_client_limit(tmp_path: Path) -> None:
    async with serve(tmp_path) as srv, srv.client() as s:
        await srv.login(s, "vic")
        ws_url = srv.url + "ws"
        for origin in ("http://evil.example", None):
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await s.ws_connect(ws_url, origin=origin)
            assert e.value.status == 403
        socks = [await s.ws_connect(ws_url, origin=srv.origin) for _ in range(8)]
        assert await socks[0].receive_str() == "state"
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await s.ws_connect(ws_url, origin=srv.origin)
        assert e.value.status == 429
        assert await socks[1].receive_str() == "state"
        await socks[1].send_str("x" * 10_000)  # past the 4 kB frame limit: the server closes
        msg = await socks[1].receive()
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert socks[1].close_code == 1009 or msg.data == 1009
        await socks[0].send_str("hi")
        assert await socks[0].receive_str() == "echo:hi"
        for w in socks:
            await w.close()
    async with serve(tmp_path / "anon") as srv, srv.client() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await s.ws_connect(srv.url + "ws", origin=srv.origin)
        assert e.value.status == 401


async def test_over_tls_cookie_is_secure_host_prefixed_and_hsts_sent(tmp_path: Path) -> None:
    write_selfsigned(tmp_path / "c.pem", tmp_path / "k.pem", ["127.0.0.1"])
    tls = TlsSection(cert=str(tmp_path / "c.pem"), key=str(tmp_path / "k.pem"))
    async with serve(tmp_path, tls=tls) as srv, srv.client() as s:
        assert srv.url.startswith("https://")
        r = await s.post(srv.url + "auth/login", json={"user": "nina", "password": PASSWORDS["nina"]},
                         headers={"Origin": srv.origin}, ssl=False)
        assert r.status == 200
        cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("__Host-pg_test=") and "Secure" in cookie and "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie and "Path=/" in cookie
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
        assert (await s.get(srv.url + "api/state", ssl=False)).status == 200


async def test_a_flood_of_state_changes_is_refused_and_counted(tmp_path: Path) -> None:
    auth = AuthSection(users_file=tmp_path / "users.json", changes_per_minute=30)
    async with serve(tmp_path, auth) as srv, srv.client() as s:
        csrf = await srv.login(s, "nina")  # the login is the first change
        statuses = []
        for _ in range(100):
            r = await s.post(srv.url + "api/ack", json={"seconds": 60}, headers={"X-CSRF-Token": csrf})
            statuses.append(r.status)
        assert statuses.count(200) == 29 and statuses.count(429) == 71
        assert len(srv.acks) == 29 and srv.sec.guard.refused["rate"] == 71
        assert (await s.get(srv.url + "api/state")).status == 200  # reading goes on
