"""`pulsegate user ...` and `pulsegate cert selfsigned` as a user runs them (real processes)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from runtime.security.users import UserStore


def pg(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pulsegate", *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


def test_user_commands_manage_the_accounts_file(tmp_path: Path) -> None:
    f = str(tmp_path / "users.json")
    r = pg("user", "add", "alice", "--role", "nurse", "--ward", "ward-7", "--users-file", f, "--password-stdin",
           stdin="alice-password-1\n")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600
    r = pg("user", "add", "prom", "--role", "service", "--token", "--generate", "--users-file", f)
    assert r.returncode == 0 and "API token for prom (shown once): pgt_" in r.stdout
    token = r.stdout.split("(shown once): ")[1].split()[0]
    r = pg("user", "add", "alice", "--role", "viewer", "--users-file", f, "--generate")
    assert r.returncode == 1 and "exists" in r.stderr
    r = pg("user", "add", "bob", "--role", "wizard", "--users-file", f, "--generate")
    assert r.returncode == 1 and "unknown role" in r.stderr
    r = pg("user", "list", "--json", "--users-file", f)
    rows = {u["name"]: u for u in json.loads(r.stdout)}
    assert rows["alice"] == {"name": "alice", "roles": ["nurse"], "wards": ["ward-7"], "sites": [], "tokens": 0}
    assert rows["prom"]["tokens"] == 1 and "argon2" not in r.stdout
    store = UserStore(tmp_path / "users.json")
    assert store.verify_password("alice", "alice-password-1") is not None
    assert store.verify_token(token) is not None
    assert pg("user", "passwd", "alice", "--users-file", f, "--password-stdin", stdin="second-password\n"
              ).returncode == 0
    assert pg("user", "revoke-tokens", "prom", "--users-file", f).stdout.startswith("revoked 1 token")
    store.reload()
    assert store.verify_password("alice", "second-password") is not None and store.verify_token(token) is None
    assert pg("user", "remove", "alice", "--users-file", f).returncode == 0
    assert "alice" not in pg("user", "list", "--users-file", f).stdout


def test_cert_selfsigned_writes_a_pair(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    r = pg("cert", "selfsigned", "--host", "gw.example", "--host", "127.0.0.1", "--cert", str(cert), "--key",
           str(key))
    assert r.returncode == 0 and "self-signed" in r.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and b"BEGIN CERTIFICATE" in cert.read_bytes()
    r = pg("cert", "selfsigned", "--host", "gw.example", "--cert", str(cert), "--key", str(key))
    assert r.returncode == 1 and "exists" in r.stderr
