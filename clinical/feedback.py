"""Nurse verdicts and clinical events as fixed codes: what the gateway accepts (pure, no I/O).

A verdict rides on an acknowledgement (nurse page body, local MQTT action): ``{"alarm_id", "verdict"}``
where ``verdict`` is one of :data:`wire.messages.VERDICTS`. Anything else beside it (a note, a comment,
a patient name or number, a verdict that is not one of the codes) makes the VERDICT rejected, with a
reason that is a metric label; the acknowledgement itself always goes ahead. The rejected text is never
logged, stored or sent: it may hold exactly the identifier it must not spread.

A clinical event is ``{"bed", "code", "t"}``: ``code`` one of :data:`wire.messages.CLINICAL_EVENTS`,
``t`` (seconds since the epoch, optional: now) at most :data:`MAX_EVENT_AGE_S` in the past and a minute
in the future. Anything else is refused as a whole (an event is nothing but its code and time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wire.messages import CLINICAL_EVENTS, VERDICTS

ACK_KEYS = frozenset({"alarm_id", "verdict", "initials"})  # "initials": older clients, ignored
EVENT_KEYS = frozenset({"bed", "code", "t"})
MAX_EVENT_AGE_S = 24 * 3600.0
MAX_EVENT_AHEAD_S = 60.0
REJECT_REASONS = ("not_a_code", "extra_field")


@dataclass(frozen=True, slots=True)
class VerdictCheck:
    code: str | None  # the accepted code, or None (none given, or rejected)
    rejected: str | None  # a reason of REJECT_REASONS when a verdict was given but refused


def check_verdict(body: Mapping[str, Any]) -> VerdictCheck:
    """The verdict of an acknowledgement body (which must already be a JSON object)."""
    extra = set(body) - ACK_KEYS
    v = body.get("verdict")
    if extra:
        return VerdictCheck(None, "extra_field")
    if v is None or v == "":
        return VerdictCheck(None, None)
    if not isinstance(v, str) or v not in VERDICTS:
        return VerdictCheck(None, "not_a_code")
    return VerdictCheck(v, None)


class EventError(ValueError):
    """A clinical event that cannot be recorded; the message names what is wrong (never echoes input)."""


def check_event(body: Mapping[str, Any], now_wall: float) -> tuple[str, str, float]:
    """(bed, code, t) of a clinical event body, or EventError."""
    extra = set(body) - EVENT_KEYS
    if extra:
        raise EventError("only bed, code and t are accepted (no free text)")
    bed, code, t = body.get("bed"), body.get("code"), body.get("t", now_wall)
    if not isinstance(bed, str) or not 0 < len(bed) <= 64:
        raise EventError("bed must be a bed id")
    if not isinstance(code, str) or code not in CLINICAL_EVENTS:
        raise EventError("code must be one of " + ", ".join(CLINICAL_EVENTS))
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        raise EventError("t must be seconds since the epoch")
    if not now_wall - MAX_EVENT_AGE_S <= float(t) <= now_wall + MAX_EVENT_AHEAD_S:
        raise EventError("t must lie within the last 24 h")
    return bed, code, float(t)
