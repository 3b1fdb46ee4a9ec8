"""Login rate limiting and lockout, per user name and per client address.

Failures are counted in a sliding window. Past ``user_failures`` for one name
the name is locked for ``lockout_s`` (doubling at each further lockout, at most
``max_lockout_s``); past ``address_failures`` from one address, the address is
locked the same way. A locked login is refused before the password is even
hashed, so a flood of guesses costs the gateway nothing. A success clears the
user's count. The caller audits what ``check``/``failure`` report.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass
class _Track:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0


class LoginThrottle:
    def __init__(self, *, user_failures: int = 5, address_failures: int = 20, window_s: float = 900.0,
                 lockout_s: float = 300.0, max_lockout_s: float = 3600.0, max_tracked: int = 50_000,
                 clock: Clock = time.monotonic) -> None:
        self.user_failures = user_failures
        self.address_failures = address_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self.max_lockout_s = max_lockout_s
        self.max_tracked = max_tracked
        self.clock = clock
        self._users: dict[str, _Track] = {}
        self._addresses: dict[str, _Track] = {}
        self.refused = 0

    def check(self, user: str, address: str) -> float:
        """Seconds until a login for ``user`` from ``address`` may be tried; 0 when it may now."""
        now = self.clock()
        wait = max(self._wait(self._users.get(user), now), self._wait(self._addresses.get(address), now))
        if wait > 0:
            self.refused += 1
        return wait

    def failure(self, user: str, address: str) -> list[str]:
        """Count a failed login; returns which of "user"/"address" just got locked."""
        now = self.clock()
        locked = []
        if self._count(self._users, user, now, self.user_failures):
            locked.append("user")
        if self._count(self._addresses, address, now, self.address_failures):
            locked.append("address")
        return locked

    def success(self, user: str) -> None:
        self._users.pop(user, None)

    @staticmethod
    def _wait(t: _Track | None, now: float) -> float:
        return max(0.0, t.locked_until - now) if t is not None else 0.0

    def _count(self, table: dict[str, _Track], key: str, now: float, limit: int) -> bool:
        t = table.get(key)
        if t is None:
            if len(table) >= self.max_tracked:
                self._prune(table, now)
            t = table[key] = _Track()
        while t.failures and now - t.failures[0] > self.window_s:
            t.failures.popleft()
        t.failures.append(now)
        if len(t.failures) >= limit and t.locked_until <= now:
            t.locked_until = now + min(self.lockout_s * 2 ** t.lockouts, self.max_lockout_s)
            t.lockouts += 1
            t.failures.clear()
            return True
        return False

    def _prune(self, table: dict[str, _Track], now: float) -> None:
        stale = [k for k, t in table.items() if t.locked_until <= now
                 and (not t.failures or now - t.failures[-1] > self.window_s)]
        for k in stale:
            del table[k]
        while len(table) >= self.max_tracked:  # still full of live entries: forget the oldest
            del table[next(iter(table))]
