"""Alarm types: one :class:`Alarm` per alarm condition occurrence, one :class:`AlarmUpdate` per state change.

States follow IEC 60601-1-8 practice (see docs/clinical.md):

- ``active``: condition present, alarm signal (visual + audible) on;
- ``silenced``: audio paused by a user for a limited time, visual still on;
- ``acknowledged``: a user (their login name recorded) took note; audio off for good,
  visual stays while the condition lasts. The first acknowledger stays the
  one of record (``acked_by``); anyone acknowledging again is listed after
  (``acked_also``, in order, each once), never overwriting the first;
- ``latched``: a latching (high priority) alarm whose condition ended but that
  nobody acknowledged yet; it stays visible and audible until acknowledged;
- ``cleared``: over; the alarm leaves the list.

Updates carry the event names of the wire contract (wire.messages.Alarm.state):
raised, escalated, acknowledged, silenced, cleared.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Priority(enum.IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Kind(enum.StrEnum):
    PHYSIOLOGICAL = "physiological"
    TECHNICAL = "technical"


class State(enum.StrEnum):
    ACTIVE = "active"
    SILENCED = "silenced"
    ACKNOWLEDGED = "acknowledged"
    LATCHED = "latched"
    CLEARED = "cleared"


class Event(enum.StrEnum):
    RAISED = "raised"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    SILENCED = "silenced"
    CLEARED = "cleared"


@dataclass(slots=True)
class Alarm:
    alarm_id: str
    bed: str
    patient: str  # the bed's patient reference as configured; pseudonymise before it leaves the gateway
    condition: str  # e.g. "spo2_low", "news2_high", "anomaly", "sensor_off:spo2"
    kind: Kind
    source: str  # threshold | news2 | anomaly | device | data
    priority: Priority
    message: str
    param: str | None
    value: float | None
    score: float | None
    t_wall: float  # capture (receive) wall time of the sample that raised it
    recv_mono: float  # when that sample arrived (monotonic); start of the latency trail
    raised_mono: float  # when the manager raised it (monotonic)
    latching: bool
    reason: str = ""  # why: rule and values, trend, score, model version (shown, sent, exported)
    state: State = State.ACTIVE
    condition_active: bool = True
    escalation: int = 0
    acked_by: str | None = None  # the first acknowledger; never overwritten
    acked_also: list[str] = field(default_factory=list)  # later acknowledgers, in order, each once
    silenced_until: float = 0.0
    last_annunciated: float = 0.0  # raised, or last escalation / re-annunciation (mono)
    delivered_mono: float | None = None  # set by the local bus publisher when published

    @property
    def audible(self) -> bool:
        return self.state in (State.ACTIVE, State.LATCHED)

    def latency_ms(self) -> dict[str, float]:
        """Latency trail in ms: sample received -> raised -> delivered on the local bus."""
        out = {"raise": round((self.raised_mono - self.recv_mono) * 1000.0, 3)}
        if self.delivered_mono is not None:
            out["deliver"] = round((self.delivered_mono - self.raised_mono) * 1000.0, 3)
            out["total"] = round((self.delivered_mono - self.recv_mono) * 1000.0, 3)
        return out

    def to_json(self) -> dict[str, object]:
        """The local (nurse page / local MQTT) JSON view. Carries the bed, never the patient reference."""
        return {
            "alarm_id": self.alarm_id,
            "bed": self.bed,
            "condition": self.condition,
            "kind": self.kind.value,
            "source": self.source,
            "priority": self.priority.label,
            "message": self.message,
            "reason": self.reason,
            "param": self.param,
            "value": self.value,
            "score": self.score,
            "t": self.t_wall,
            "state": self.state.value,
            "condition_active": self.condition_active,
            "escalation": self.escalation,
            "acked_by": self.acked_by,
            "acked_also": list(self.acked_also),
            "latency_ms": self.latency_ms(),
        }


@dataclass(slots=True)
class AlarmUpdate:
    """One state change of an alarm. ``alarm`` is the live object (read it in the callback)."""

    event: Event
    alarm: Alarm
    at_mono: float
    by: str | None = None  # the authenticated user who acknowledged / silenced
    detail: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        out = self.alarm.to_json()
        out["event"] = self.event.value
        if self.by is not None:
            out["by"] = self.by
        return out
