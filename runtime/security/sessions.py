"""Server-side sessions: a random id in a cookie, everything else in memory here.

A session ends at the first of: its absolute lifetime, its idle timeout, a
logout, or (for a local user) a password change or removal (the user's
generation moved on). Each has its own CSRF token, sent by the page in
``X-CSRF-Token`` on every state change. Ids are 256-bit random; the store is
keyed by their SHA-256, so the ids themselves are not kept. Bounded: at most
``max_per_user`` per user and ``max_total`` overall, the oldest evicted first.
A restart ends every session (nurses log in again): nothing to steal on disk.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .roles import Principal

Clock = Callable[[], float]


@dataclass
class Session:
    principal: Principal
    csrf: str
    created: float
    last_seen: float
    generation: int = 0  # the local user's generation; 0 for OIDC sessions
    extra: dict[str, str] = field(default_factory=dict)


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, absolute_s: float = 12 * 3600.0, idle_s: float = 30 * 60.0, *, max_per_user: int = 20,
                 max_total: int = 10_000, clock: Clock = time.monotonic) -> None:
        if not 0 < idle_s <= absolute_s:
            raise ValueError("session idle timeout must be positive and at most the absolute lifetime")
        self.absolute_s = absolute_s
        self.idle_s = idle_s
        self.max_per_user = max_per_user
        self.max_total = max_total
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self.expired = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, principal: Principal, generation: int = 0) -> tuple[str, Session]:
        """A new session for ``principal``: returns (cookie value, session)."""
        now = self.clock()
        self._sweep(now)
        mine = sorted(((k, s) for k, s in self._sessions.items() if s.principal.name == principal.name),
                      key=lambda ks: ks[1].created)
        for k, _ in mine[: max(0, len(mine) - self.max_per_user + 1)]:
            del self._sessions[k]
        if len(self._sessions) >= self.max_total:
            oldest = min(self._sessions, key=lambda k: self._sessions[k].last_seen)
            del self._sessions[oldest]
        sid = secrets.token_urlsafe(32)
        s = Session(principal, secrets.token_urlsafe(32), now, now, generation)
        self._sessions[_key(sid)] = s
        return sid, s

    def get(self, session_id: str) -> Session | None:
        """The live session for a cookie value (touching its idle timer), or None."""
        if not session_id or len(session_id) > 128:
            return None
        k = _key(session_id)
        s = self._sessions.get(k)
        if s is None:
            return None
        now = self.clock()
        if now - s.created >= self.absolute_s or now - s.last_seen >= self.idle_s:
            del self._sessions[k]
            self.expired += 1
            return None
        s.last_seen = now
        return s

    def delete(self, session_id: str) -> None:
        self._sessions.pop(_key(session_id), None)

    def delete_user(self, name: str) -> int:
        keys = [k for k, s in self._sessions.items() if s.principal.name == name]
        for k in keys:
            del self._sessions[k]
        return len(keys)

    @staticmethod
    def csrf_ok(session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(session.csrf.encode(), token.encode())

    def _sweep(self, now: float) -> None:
        dead = [k for k, s in self._sessions.items()
                if now - s.created >= self.absolute_s or now - s.last_seen >= self.idle_s]
        for k in dead:
            del self._sessions[k]
        self.expired += len(dead)
