"""The gateway's local accounts: one JSON file, argon2id password hashes, roles, wards, API tokens.

The gateway must let nurses log in with the hospital network down, so its
accounts live on its own disk (``pulsegate user add|passwd|remove|list``).
The file is written atomically (temporary file, fsync, rename) with mode 0600,
owned by the owner of its folder (the daemon's user, when root runs the CLI),
and re-read by a running daemon when it changes, so a new user or a new
password takes effect without a restart. Each password change or removal bumps
the user's ``generation``; sessions made under an older generation end.

API tokens (for machines: nurse-call integrations, Prometheus) look like
``pgt_<id>_<secret>``; only the SHA-256 of the secret is stored (the secret has
256 bits of entropy, so a fast hash is the right one here, unlike passwords).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .roles import ALL, Principal, Role, parse_roles

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
SCOPE = re.compile(r"\*|[A-Za-z0-9_-]{1,64}")
TOKEN = re.compile(r"pgt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


class UserStoreError(ValueError):
    pass


def default_hasher() -> PasswordHasher:
    """argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4)."""
    return PasswordHasher()


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    roles: frozenset[Role]
    wards: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    tokens: dict[str, str] = field(default_factory=dict)  # token id -> sha256(secret) hex
    generation: int = 1
    changed: float = 0.0

    def principal(self, method: str) -> Principal:
        return Principal(self.name, self.roles, self.wards, self.sites, method)

    def to_json(self) -> dict[str, Any]:
        return {"hash": self.password_hash, "roles": sorted(self.roles), "wards": sorted(self.wards),
                "sites": sorted(self.sites), "tokens": dict(self.tokens), "generation": self.generation,
                "changed": self.changed}

    @staticmethod
    def from_json(name: str, d: dict[str, Any]) -> User:
        return User(name, str(d["hash"]), parse_roles(list(d["roles"])), frozenset(d.get("wards", ())),
                    frozenset(d.get("sites", ())), {str(k): str(v) for k, v in d.get("tokens", {}).items()},
                    int(d.get("generation", 1)), float(d.get("changed", 0.0)))


def check_username(name: str) -> str:
    if not USERNAME.fullmatch(name):
        raise UserStoreError(f"user name {name!r}: 1-64 of a-z 0-9 . _ -, starting with a letter or digit")
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserStoreError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def check_scopes(kind: str, values: Sequence[str]) -> frozenset[str]:
    for v in values:
        if not SCOPE.fullmatch(v):
            raise UserStoreError(f"{kind} {v!r}: an id of A-Z a-z 0-9 _ - (or * for all)")
    return frozenset(values)


def hash_token_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class UserStore:
    """Load, query and (for the CLI) change the accounts file. Not thread-safe; one writer at a time."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = path
        self.hasher = hasher or default_hasher()
        self.users: dict[str, User] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        self.reload()

    # -- file ---------------------------------------------------------------------------------------------------
    def reload(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self.users, self._stamp = {}, None
            return
        if st.st_mode & 0o077:
            raise UserStoreError(f"{self.path}: mode {st.st_mode & 0o777:o}, must not be readable by others (0600)")
        try:
            doc = json.loads(self.path.read_text())
            users = {check_username(n): User.from_json(n, d) for n, d in doc["users"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserStoreError(f"{self.path}: not a PulseGate users file ({exc})") from None
        self.users, self._stamp = users, (st.st_mtime_ns, st.st_ino)

    def reload_if_changed(self, min_interval_s: float = 1.0) -> None:
        """Re-read the file when it changed on disk (checked at most once per ``min_interval_s``)."""
        now = time.monotonic()
        if now - self._checked < min_interval_s:
            return
        self._checked = now
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self.reload()

    def save(self) -> None:
        doc = {"version": 1, "users": {n: u.to_json() for n, u in sorted(self.users.items())}}
        data = json.dumps(doc, indent=2).encode() + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".users.", dir=self.path.parent)  # created 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            if os.geteuid() == 0:  # root runs the CLI: the file belongs to the daemon's user (owner of its folder)
                parent = self.path.parent.stat()
                os.chown(tmp, parent.st_uid, parent.st_gid)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        st = self.path.stat()
        self._stamp = (st.st_mtime_ns, st.st_ino)

    # -- changes (the CLI) -----------------------------------------------------------------------------------
    def add(self, name: str, password: str, roles: Sequence[str], wards: Sequence[str] = (),
            sites: Sequence[str] = ()) -> User:
        check_username(name)
        if name in self.users:
            raise UserStoreError(f"user {name!r} exists (use passwd to change the password)")
        parsed = parse_roles(roles)
        if not parsed:
            raise UserStoreError("a user needs at least one role")
        user = User(name, self.hasher.hash(check_password(password)), parsed, check_scopes("ward", list(wards)),
                    check_scopes("site", list(sites)), changed=time.time())
        self.users[name] = user
        return user

    def passwd(self, name: str, password: str) -> User:
        user = self._get(name)
        user = replace(user, password_hash=self.hasher.hash(check_password(password)),
                       generation=user.generation + 1, changed=time.time())
        self.users[name] = user
        return user

    def remove(self, name: str) -> None:
        self._get(name)
        del self.users[name]

    def new_token(self, name: str) -> str:
        """A new API token for ``name`` (shown once; only its hash is kept)."""
        user = self._get(name)
        tid, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        self.users[name] = replace(user, tokens={**user.tokens, tid: hash_token_secret(secret)}, changed=time.time())
        return f"pgt_{tid}_{secret}"

    def revoke_tokens(self, name: str) -> int:
        user = self._get(name)
        n = len(user.tokens)
        self.users[name] = replace(user, tokens={}, generation=user.generation + 1, changed=time.time())
        return n

    def _get(self, name: str) -> User:
        try:
            return self.users[name]
        except KeyError:
            raise UserStoreError(f"no user {name!r}") from None

    # -- checks (the daemons) ---------------------------------------------------------------------------------
    def verify_password(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs; None otherwise. Costs one argon2 hash either way (no user
        enumeration by timing). Blocking (~50-100 ms): daemons call it in a worker thread."""
        user = self.users.get(name)
        if not 0 < len(password) <= MAX_PASSWORD:
            return None
        try:
            self.hasher.verify(user.password_hash if user else self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user

    def verify_token(self, token: str) -> User | None:
        m = TOKEN.fullmatch(token)
        if m is None:
            return None
        tid, digest = m.group(1), hash_token_secret(m.group(2))
        for user in self.users.values():
            stored = user.tokens.get(tid)
            if stored is not None and hmac.compare_digest(stored, digest):
                return user
        return None

    def current(self, name: str, generation: int) -> User | None:
        """The user if they still exist under the same generation (password unchanged)."""
        user = self.users.get(name)
        return user if user is not None and user.generation == generation else None


__all__ = ["ALL", "User", "UserStore", "UserStoreError"]
