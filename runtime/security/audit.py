"""The security audit trail: every login, lockout, refusal and user action, one JSON log line each.

Lines go to the ``audit`` logger (journald keeps them with the rest); the last
records also stay in memory (tests, the admin view) and every event is counted
for /metrics. Fields are who (the authenticated user), what, outcome, from where
(client address) and the object (alarm id, bed); never patient data.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from runtime.logs import get_logger

log = get_logger("audit")


@dataclass(frozen=True)
class AuditEvent:
    wall: float
    action: str
    outcome: str  # ok | denied | failed | locked
    user: str
    client: str
    detail: dict[str, Any] = field(default_factory=dict)


class Audit:
    def __init__(self, keep: int = 1000) -> None:
        self.events: deque[AuditEvent] = deque(maxlen=keep)
        self.counts: Counter[tuple[str, str]] = Counter()

    def record(self, action: str, outcome: str, user: str, client: str, **detail: Any) -> AuditEvent:
        ev = AuditEvent(time.time(), action, outcome, user, client, detail)
        self.events.append(ev)
        self.counts[(action, outcome)] += 1
        emit = log.info if outcome == "ok" else log.warning
        emit("audit", action=action, outcome=outcome, user=user, client=client, **detail)
        return ev

    def find(self, action: str, outcome: str | None = None) -> list[AuditEvent]:
        return [e for e in self.events if e.action == action and (outcome is None or e.outcome == outcome)]

    def reading(self) -> dict[tuple[str, ...], float]:
        """For a CallbackCollector counter labelled (action, outcome)."""
        return {k: float(v) for k, v in self.counts.items()}
