"""The alarm manager: condition delays, latching, acknowledge, silence, escalation.

Evaluators (thresholds, NEWS2, the anomaly model, technical checks) tell the
manager, per bed and condition, whether the condition is on right now
(:meth:`AlarmManager.update`); the manager owns everything after that:

- alarm condition delay: a condition must stay on for its ``delay_s`` before an
  alarm is raised, so a single artifact does not alarm; value hysteresis is
  applied by the evaluator (it knows the units), time hysteresis here
  (``clear_delay_s``: the condition must stay off that long before it ends);
- latching: a latching alarm whose condition ends stays (state ``latched``,
  still audible) until someone acknowledges it; a non-latching one clears. The
  condition coming back within ``recurrence_s`` makes the latched alarm active
  again (a flapping condition is one alarm); coming back later it is a new
  occurrence, raised as a new alarm with its own time and reason (a ventricular
  tachycardia hours after a burst nobody acknowledged is not the old alarm),
  while the latched one stays until acknowledged;
- acknowledge by the authenticated user (audited with their login name): audio off for good, the alarm
  stays visible while its condition lasts and clears when it ends;
- silence (audio paused) for at most ``max_silence_s``; when the pause runs out
  the alarm sounds again (re-raised);
- escalation: an alarm left unacknowledged for its priority's interval is
  escalated, and again each interval after that.

Physiological and technical alarms are separate conditions with separate
priorities; evaluators never derive one from the other.

All times are passed in (``now``: monotonic seconds, or the recorded time
in a replay); ``clock`` only stamps the latency trail.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from clinical.alarms.model import Alarm, AlarmUpdate, Event, Kind, Priority, State
from clinical.alarms.profiles import EscalationSettings
from runtime.logs import get_logger

log = get_logger("edge.alarms")
# enum members read from their class cost ~0.1 us each (Python 3.11): tick() compares every open alarm's state
_SILENCED, _ACKNOWLEDGED = State.SILENCED, State.ACKNOWLEDGED
USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")  # the authenticated user (the login is the audit identity)


class AlarmActionError(ValueError):
    """Bad acknowledge/silence request (unknown alarm, bad user name); the message is safe to show."""


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    """Static description of one alarm condition, built once per profile rule."""

    name: str
    kind: Kind
    source: str
    priority: Priority
    delay_s: float
    latching: bool
    message: str
    param: str | None = None
    clear_delay_s: float = 0.0  # the condition must stay off this long before the alarm's condition ends


class _Cond:
    __slots__ = ("alarm", "ended", "off_since", "since")

    def __init__(self) -> None:
        self.since = math.nan  # when the condition came on (pending), NaN when off
        self.off_since = math.nan  # when an alarming condition went off (clear delay pending)
        self.ended = math.nan  # when the alarm's condition ended (it latched)
        self.alarm: Alarm | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    at_wall: float
    action: str  # acknowledge | silence
    alarm_id: str
    bed: str
    condition: str
    by: str
    duration_s: float | None = None


class AlarmManager:
    def __init__(
        self,
        emit: Callable[[AlarmUpdate], None],
        escalation: EscalationSettings | None = None,
        max_silence_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        id_base: int = 0,
        on_audit: Callable[[AuditRecord], None] | None = None,
        recurrence_s: float = 300.0,
    ) -> None:
        self._emit = emit
        esc = escalation or EscalationSettings()
        self._escalate_s = {Priority.HIGH: esc.high_s, Priority.MEDIUM: esc.medium_s, Priority.LOW: esc.low_s,
                            Priority.INFO: 0.0}
        self.max_silence_s = max_silence_s
        self.recurrence_s = recurrence_s
        self._clock = clock
        self._wall = wall
        self._next_id = id_base
        self._on_audit = on_audit
        self._conds: dict[str, dict[str, _Cond]] = {}
        self._open: dict[str, Alarm] = {}  # alarm_id -> alarm not yet cleared
        self.audit: deque[AuditRecord] = deque(maxlen=10_000)
        self.raised_total = 0

    # -- evaluation ------------------------------------------------------------------------------------
    def _cond(self, bed: str, name: str) -> _Cond:
        per_bed = self._conds.get(bed)
        if per_bed is None:
            per_bed = self._conds[bed] = {}
        c = per_bed.get(name)
        if c is None:
            c = per_bed[name] = _Cond()
        return c

    def is_on(self, bed: str, name: str) -> bool:
        """Whether the condition is on (pending its delay, or alarming with the condition present)."""
        per_bed = self._conds.get(bed)
        c = per_bed.get(name) if per_bed else None
        if c is None:
            return False
        return c.since == c.since or (c.alarm is not None and c.alarm.condition_active)

    def update(
        self,
        bed: str,
        patient: str,
        spec: ConditionSpec,
        active: bool,
        now: float,
        *,
        value: float | None = None,
        score: float | None = None,
        recv_mono: float | None = None,
        t_wall: float = 0.0,
        reason: str = "",
    ) -> Alarm | None:
        """Report the condition's current truth; returns the alarm if this call raised one."""
        c = self._cond(bed, spec.name)
        a = c.alarm
        if active:
            if (a is not None and a.state is State.LATCHED and self.recurrence_s > 0
                    and now - c.ended >= self.recurrence_s):
                c.alarm = a = None  # a new occurrence; the latched alarm stays open until acknowledged
            if a is not None:
                c.off_since = math.nan
                a.value = value
                if score is not None:
                    a.score = score
                if not a.condition_active:
                    a.condition_active = True
                    if a.state is State.LATCHED:
                        a.state = State.ACTIVE
                return None
            if c.since != c.since:
                c.since = now
            if now - c.since < spec.delay_s:
                return None
            recv = now if recv_mono is None else recv_mono
            a = self._raise(c, bed, patient, spec, value, score, recv, t_wall, now, reason)
            return a
        c.since = math.nan
        if a is not None and a.condition_active:
            if spec.clear_delay_s > 0:
                if c.off_since != c.off_since:
                    c.off_since = now
                if now - c.off_since < spec.clear_delay_s:
                    return None
            c.off_since = math.nan
            a.condition_active = False
            if a.latching and a.state is not State.ACKNOWLEDGED:
                a.state = State.LATCHED
                c.ended = now
            else:
                self._clear(c, a, now)
        return None

    def _raise(
        self, c: _Cond, bed: str, patient: str, spec: ConditionSpec, value: float | None, score: float | None,
        recv_mono: float, t_wall: float, now: float, reason: str = "",
    ) -> Alarm:
        self._next_id += 1
        raised = self._clock()
        a = Alarm(
            alarm_id=f"{bed}.{spec.name}.{self._next_id}",
            bed=bed,
            patient=patient,
            condition=spec.name,
            kind=spec.kind,
            source=spec.source,
            priority=spec.priority,
            message=spec.message,
            param=spec.param,
            value=value,
            score=score,
            t_wall=t_wall,
            recv_mono=recv_mono,
            raised_mono=raised,
            latching=spec.latching,
            reason=reason,
            last_annunciated=now,
        )
        c.since = math.nan
        c.alarm = a
        self._open[a.alarm_id] = a
        self.raised_total += 1
        self._emit(AlarmUpdate(Event.RAISED, a, raised))
        return a

    def _clear(self, c: _Cond | None, a: Alarm, now: float) -> None:
        a.state = State.CLEARED
        a.condition_active = False
        self._open.pop(a.alarm_id, None)
        if c is None:
            c = self._cond(a.bed, a.condition)
        if c.alarm is a:
            c.alarm = None
        self._emit(AlarmUpdate(Event.CLEARED, a, now))

    # -- user actions ------------------------------------------------------------------------------------
    def _user_action(self, alarm_id: str, initials: str) -> Alarm:
        if not USER.fullmatch(initials or ""):
            raise AlarmActionError("the acting user name must be 1-128 of A-Z a-z 0-9 . _ @ -")
        a = self._open.get(alarm_id)
        if a is None:
            raise AlarmActionError("no such open alarm")
        return a

    def acknowledge(self, alarm_id: str, initials: str, now: float) -> Alarm:
        """Acknowledge (audited). A latched alarm whose condition ended clears; others stay visible, silent.

        A second acknowledge keeps the first acknowledger (``acked_by``) and lists the later one in
        ``acked_also`` (each user once); it is audited and emitted like the first."""
        a = self._user_action(alarm_id, initials)
        again = a.acked_by is not None
        a.state = State.ACKNOWLEDGED
        if not again:
            a.acked_by = initials
        elif initials != a.acked_by and initials not in a.acked_also:
            a.acked_also.append(initials)
        self._audit("acknowledge", a, initials, None)
        self._emit(AlarmUpdate(Event.ACKNOWLEDGED, a, now, by=initials, detail={"again": True} if again else {}))
        if not a.condition_active:
            self._clear(None, a, now)
        return a

    def silence(self, alarm_id: str, initials: str, duration_s: float, now: float) -> Alarm:
        """Pause the alarm's audio for ``duration_s`` (capped at max_silence_s); audited."""
        a = self._user_action(alarm_id, initials)
        if a.state is State.ACKNOWLEDGED:
            return a  # already silent for good
        if not duration_s > 0:
            raise AlarmActionError("silence duration must be positive")
        d = min(float(duration_s), self.max_silence_s)
        a.state = State.SILENCED
        a.silenced_until = now + d
        self._audit("silence", a, initials, d)
        self._emit(AlarmUpdate(Event.SILENCED, a, now, by=initials, detail={"duration_s": d}))
        return a

    def _audit(self, action: str, a: Alarm, by: str, duration: float | None) -> None:
        rec = AuditRecord(self._wall(), action, a.alarm_id, a.bed, a.condition, by, duration)
        self.audit.append(rec)
        log.info("alarm_" + action, alarm_id=a.alarm_id, bed=a.bed, condition=a.condition, by=by,
                 duration_s=duration)
        if self._on_audit is not None:
            self._on_audit(rec)

    # -- time ----------------------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Silence expiry and escalation of unacknowledged alarms."""
        if not self._open:
            return
        for a in list(self._open.values()):
            if a.state is _SILENCED and now >= a.silenced_until:
                a.state = State.ACTIVE if a.condition_active else State.LATCHED
                a.last_annunciated = now
                self._emit(AlarmUpdate(Event.RAISED, a, now, detail={"resumed": True}))
            if a.state is _ACKNOWLEDGED:
                continue
            every = self._escalate_s[a.priority]
            if every > 0 and now - a.last_annunciated >= every:
                a.escalation += 1
                a.last_annunciated = now
                self._emit(AlarmUpdate(Event.ESCALATED, a, now, detail={"level": a.escalation}))

    # -- views -----------------------------------------------------------------------------------------------
    @property
    def open_count(self) -> int:
        return len(self._open)

    def open_alarms(self) -> Iterator[Alarm]:
        return iter(self._open.values())

    def get_alarm(self, bed: str, condition: str) -> Alarm | None:
        """The open alarm of a bed's condition, if any."""
        per_bed = self._conds.get(bed)
        c = per_bed.get(condition) if per_bed else None
        return c.alarm if c is not None else None

    def get(self, alarm_id: str) -> Alarm | None:
        return self._open.get(alarm_id)

    def sorted_open(self) -> list[Alarm]:
        """Open alarms by priority (high first), then audible before silent, then newest first."""
        return sorted(self._open.values(), key=lambda a: (-a.priority, not a.audible, -a.raised_mono))

    def forget_bed(self, bed: str) -> None:
        for a in [a for a in self._open.values() if a.bed == bed]:
            self._clear(None, a, self._clock())
        self._conds.pop(bed, None)
