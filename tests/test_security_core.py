"""Unit tests of the security core: accounts file, sessions, lockout, roles, bounded JSON, policy, TLS."""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from runtime.security.config import AuthSection, OidcSection
from runtime.security.jsonbody import BodyError, finite_number, nesting_depth, parse_json_object
from runtime.security.policy import InsecureListenerError, check_listener, is_loopback
from runtime.security.roles import ALL, Access, Principal, Role, parse_roles
from runtime.security.sessions import SessionStore
from runtime.security.throttle import LoginThrottle
from runtime.security.tls import selfsigned, server_context, write_selfsigned
from runtime.security.users import UserStore, UserStoreError

FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # still argon2id; tests need speed


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_user_store_hashes_with_argon2id_and_writes_0600_atomically(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "users.json"
    store = UserStore(path, FAST)
    store.add("alice", "correct horse battery", ["nurse"], wards=["ward-7"])
    store.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_text()
    assert "correct horse" not in raw and "$argon2id$" in raw
    assert [p.name for p in path.parent.iterdir()] == ["users.json"]  # no temporary file left
    again = UserStore(path, FAST)
    alice = again.verify_password("alice", "correct horse battery")
    assert alice is not None and alice.roles == {Role.NURSE} and alice.wards == {"ward-7"}
    assert again.verify_password("alice", "wrong password!") is None
    assert again.verify_password("nobody", "correct horse battery") is None


def test_user_store_refuses_bad_input_and_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    store = UserStore(path, FAST)
    with pytest.raises(UserStoreError, match="10 to"):
        store.add("bob", "short", ["nurse"])
    with pytest.raises(ValueError, match="unknown role"):
        store.add("bob", "long enough pw", ["superuser"])
    with pytest.raises(UserStoreError, match="user name"):
        store.add("Bob Smith", "long enough pw", ["nurse"])
    with pytest.raises(UserStoreError, match="ward"):
        store.add("bob", "long enough pw", ["nurse"], wards=["ward 7; drop"])
    store.add("bob", "long enough pw", ["nurse"])
    with pytest.raises(UserStoreError, match="exists"):
        store.add("bob", "long enough pw", ["viewer"])
    store.save()
    os.chmod(path, 0o644)
    with pytest.raises(UserStoreError, match="0600"):
        UserStore(path, FAST)
    os.chmod(path, 0o600)
    path.write_text("{not json")
    with pytest.raises(UserStoreError, match="not a PulseGate users file"):
        UserStore(path, FAST)


def test_password_change_bumps_generation_and_running_store_reloads(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    cli = UserStore(path, FAST)
    cli.add("carol", "first password", ["charge_nurse"])
    cli.save()
    daemon = UserStore(path, FAST)
    gen = daemon.users["carol"].generation
    cli.passwd("carol", "second password")
    cli.save()
    daemon.reload_if_changed(min_interval_s=0)
    assert daemon.current("carol", gen) is None  # sessions under the old password end
    assert daemon.verify_password("carol", "second password") is not None
    cli.remove("carol")
    cli.save()
    daemon.reload_if_changed(min_interval_s=0)
    assert daemon.verify_password("carol", "second password") is None


def test_api_tokens_are_stored_hashed_and_revocable(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json", FAST)
    store.add("prometheus", "unused-password", ["service"])
    token = store.new_token("prometheus")
    store.save()
    assert token not in (tmp_path / "users.json").read_text()
    user = store.verify_token(token)
    assert user is not None and user.name == "prometheus"
    assert store.verify_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.verify_token("pgt_nothex_x") is None
    assert store.revoke_tokens("prometheus") == 1
    assert store.verify_token(token) is None


def test_sessions_expire_idle_and_absolute_and_are_bounded() -> None:
    clock = Clock()
    s = SessionStore(absolute_s=100.0, idle_s=30.0, max_per_user=2, clock=clock)
    p = Principal("alice", frozenset({Role.NURSE}))
    sid, sess = s.create(p, 1)
    assert len(sid) >= 43 and s.get(sid) is sess
    clock.t += 29
    assert s.get(sid) is sess  # touched: idle timer restarts
    clock.t += 29
    assert s.get(sid) is sess
    clock.t += 31
    assert s.get(sid) is None and s.expired == 1  # idle
    sid, _ = s.create(p)
    for _ in range(4):
        clock.t += 20
        assert s.get(sid) is not None
    clock.t += 21
    assert s.get(sid) is None  # absolute lifetime, however busy
    a, _ = s.create(p)
    b, _ = s.create(p)
    c, _ = s.create(p)
    assert s.get(a) is None and s.get(b) is not None and s.get(c) is not None  # oldest evicted
    assert SessionStore.csrf_ok(s.get(c), s.get(c).csrf) and not SessionStore.csrf_ok(s.get(c), "x")  # type: ignore[arg-type]
    assert not SessionStore.csrf_ok(s.get(c), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SessionStore(absolute_s=10, idle_s=20)


def test_throttle_locks_user_then_address_and_doubles() -> None:
    clock = Clock()
    t = LoginThrottle(user_failures=3, address_failures=5, window_s=60, lockout_s=10, clock=clock)
    assert t.failure("alice", "10.0.0.1") == []
    assert t.failure("alice", "10.0.0.1") == []
    assert t.failure("alice", "10.0.0.1") == ["user"]
    assert t.check("alice", "10.0.0.2") == pytest.approx(10)  # the name is locked from anywhere
    assert t.check("bob", "10.0.0.1") == 0
    t.failure("bob", "10.0.0.1")
    assert t.failure("carol", "10.0.0.1") == ["address"]  # 5 failures from one address
    assert t.check("dave", "10.0.0.1") > 0
    clock.t += 11
    assert t.check("alice", "10.0.0.2") == 0
    for _ in range(3):
        locked = t.failure("alice", "10.0.0.3")
    assert locked == ["user"] and t.check("alice", "x") == pytest.approx(20)  # second lockout: twice as long
    t.success("alice")
    assert t.check("alice", "x") == 0


def test_roles_permissions_scopes_and_silence_bounds() -> None:
    nurse = Principal("n", frozenset({Role.NURSE}), frozenset({"ward-7"}))
    charge = Principal("c", frozenset({Role.CHARGE_NURSE}))
    viewer = Principal("v", frozenset({Role.VIEWER}), sites=frozenset({"site-a"}))
    admin = Principal("a", frozenset({Role.ADMIN}))
    assert nurse.may(Access.ACT_ON_ALARMS) and not viewer.may(Access.ACT_ON_ALARMS)
    assert not nurse.may(Access.LIVE_VIEW) and Principal("d", frozenset({Role.CLINICIAN})).may(Access.LIVE_VIEW)
    assert nurse.on_ward("ward-7") and not nurse.on_ward("ward-8") and charge.on_ward("ward-8")
    assert nurse.max_silence_s() == 120 and charge.max_silence_s() == 600 and viewer.max_silence_s() == 0
    assert viewer.site_scope() == {"site-a"} and viewer.sees_site("site-a") and not viewer.sees_site("site-b")
    assert admin.site_scope() is None
    assert Principal("x", frozenset({Role.VIEWER}), sites=frozenset({ALL})).site_scope() is None
    assert not Principal("nobody", frozenset()).may(Access.AUTHENTICATED)
    assert Access.METRICS in {a for a in Access if Principal("s", frozenset({Role.SERVICE})).may(a)}
    assert parse_roles(["admin", "viewer"]) == {Role.ADMIN, Role.VIEWER}


def test_json_depth_is_found_before_parsing_and_numbers_are_checked() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert nesting_depth(deep, 32) == 33  # stops early: linear, no recursion
    assert nesting_depth('{"a": "[[[[[[[[", "b": [1, {"c": 2}]}', 32) == 3  # brackets inside strings skipped
    with pytest.raises(BodyError, match="deeper"):
        parse_json_object(deep.encode())
    with pytest.raises(BodyError, match="not a JSON number"):
        parse_json_object(b'{"seconds": Infinity}')
    with pytest.raises(BodyError, match="object"):
        parse_json_object(b"[1]")
    with pytest.raises(BodyError, match="UTF-8"):
        parse_json_object(b'{"a": "\xff"}')
    assert parse_json_object(b'{"seconds": 60}') == {"seconds": 60}
    assert finite_number(60, "seconds", 1, 120) == 60.0
    for bad in (True, "60", float("nan"), float("inf"), 1e9, 0, None):
        with pytest.raises(BodyError):
            finite_number(bad, "seconds", 1, 120)


def test_non_loopback_listener_needs_auth_and_tls_unless_insecure(caplog: pytest.LogCaptureFixture) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("ward-gw.example")
    check_listener("nurse", "127.0.0.1", auth=False, tls=False, insecure_no_auth=False)
    with pytest.raises(InsecureListenerError, match="authentication and TLS"):
        check_listener("nurse", "0.0.0.0", auth=False, tls=False, insecure_no_auth=False)
    with pytest.raises(InsecureListenerError, match="without TLS"):
        check_listener("nurse", "0.0.0.0", auth=True, tls=False, insecure_no_auth=False)
    check_listener("nurse", "0.0.0.0", auth=True, tls=True, insecure_no_auth=False)
    with caplog.at_level("ERROR"):
        check_listener("nurse", "0.0.0.0", auth=False, tls=False, insecure_no_auth=True)
    assert any(r.getMessage() == "insecure_listener" and r.levelname == "ERROR" for r in caplog.records)


def test_config_sections_forbid_unknown_keys_and_symmetric_algorithms() -> None:
    with pytest.raises(ValueError, match="extra"):
        AuthSection.model_validate({"users_fil": "x"})
    with pytest.raises(ValueError, match="longer"):
        AuthSection(session_idle_s=7200, session_absolute_s=3600)
    with pytest.raises(ValueError, match="asymmetric"):
        OidcSection(issuer="https://sso.example", client_id="pg", algorithms=("HS256",))
    assert AuthSection().enabled is False and AuthSection(users_file=Path("u.json")).enabled


async def test_selfsigned_certificate_serves_a_real_tls_handshake(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    write_selfsigned(cert, key, ["gw.example", "127.0.0.1"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="exists"):
        write_selfsigned(cert, key, ["gw.example"])
    with caplog.at_level("WARNING"):
        server = server_context(str(cert), str(key))
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    assert [r.getMessage() for r in caplog.records] == ["tls_self_signed"]  # said at every start

    async def answer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"hello")
        await w.drain()
        w.close()

    srv = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server)
    port = srv.sockets[0].getsockname()[1]
    client = ssl.create_default_context(cafile=str(cert))
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="gw.example")
    assert await reader.read() == b"hello"
    writer.close()
    srv.close()
    await srv.wait_closed()
    with pytest.raises(ValueError, match="cannot read"):
        server_context(str(tmp_path / "missing.pem"), str(key))
    pem, _ = selfsigned(["10.1.2.3"])
    assert b"BEGIN CERTIFICATE" in pem
