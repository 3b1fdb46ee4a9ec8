"""Alarm manager core logic with a fake clock: delays, latching, acknowledge, silence, escalation."""

from __future__ import annotations

import pytest

from clinical.alarms.manager import AlarmActionError, AlarmManager, ConditionSpec
from clinical.alarms.model import Alarm, AlarmUpdate, Event, Kind, Priority, State
from clinical.alarms.profiles import EscalationSettings


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


HIGH = ConditionSpec("spo2_desat", Kind.PHYSIOLOGICAL, "threshold", Priority.HIGH, 10.0, True, "desat", "spo2")
MED = ConditionSpec("hr_high", Kind.PHYSIOLOGICAL, "threshold", Priority.MEDIUM, 10.0, False, "hr high", "heart_rate")


@pytest.fixture
def env() -> tuple[AlarmManager, list[AlarmUpdate], Clock]:
    clock = Clock()
    got: list[AlarmUpdate] = []
    m = AlarmManager(got.append, EscalationSettings(high_s=60, medium_s=180, low_s=0), 120.0, clock, clock)
    return m, got, clock


def state_of(a: Alarm) -> State:
    return a.state


def feed(m: AlarmManager, clock: Clock, spec: ConditionSpec, pattern: list[bool], step: float = 1.0) -> None:
    for on in pattern:
        m.update("b1", "p", spec, on, clock.t, value=1.0, recv_mono=clock.t - 0.002, t_wall=clock.t)
        clock.t += step


def test_condition_delay_and_single_artifact(env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    m, got, clock = env
    feed(m, clock, MED, [True, False] * 20)  # isolated artifacts never last the 10 s delay
    feed(m, clock, MED, [True] * 5 + [False] + [True] * 9)
    assert got == []
    feed(m, clock, MED, [True] * 11)
    assert [u.event for u in got] == [Event.RAISED]
    a = got[0].alarm
    assert a.priority is Priority.MEDIUM and a.kind is Kind.PHYSIOLOGICAL and a.state is State.ACTIVE
    assert a.latency_ms()["raise"] == pytest.approx(2.0, abs=0.01)


def test_non_latching_clears_when_condition_ends(env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    m, got, clock = env
    feed(m, clock, MED, [True] * 12 + [False])
    assert [u.event for u in got] == [Event.RAISED, Event.CLEARED]
    assert list(m.open_alarms()) == []


def test_high_priority_latches_until_acknowledged(env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    m, got, clock = env
    feed(m, clock, HIGH, [True] * 12 + [False] * 5)
    assert [u.event for u in got] == [Event.RAISED]
    (a,) = m.open_alarms()
    assert a.state is State.LATCHED and a.audible and not a.condition_active
    m.acknowledge(a.alarm_id, "JS", clock.t)
    assert [u.event for u in got] == [Event.RAISED, Event.ACKNOWLEDGED, Event.CLEARED]
    assert got[1].by == "JS" and a.acked_by == "JS"
    assert list(m.open_alarms()) == []
    assert m.audit[-1].action == "acknowledge" and m.audit[-1].by == "JS" and m.audit[-1].alarm_id == a.alarm_id


def test_acknowledged_alarm_stays_until_condition_ends(env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    m, got, clock = env
    feed(m, clock, HIGH, [True] * 12)
    (a,) = m.open_alarms()
    m.acknowledge(a.alarm_id, "AB", clock.t)
    assert a.state is State.ACKNOWLEDGED and not a.audible
    feed(m, clock, HIGH, [True] * 100)
    m.tick(clock.t)  # acknowledged alarms never escalate
    assert [u.event for u in got] == [Event.RAISED, Event.ACKNOWLEDGED]
    feed(m, clock, HIGH, [False])
    assert got[-1].event is Event.CLEARED


def test_second_acknowledge_keeps_the_first_and_lists_later_ones(
        env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    m, got, clock = env
    feed(m, clock, HIGH, [True] * 12)
    (a,) = m.open_alarms()
    m.acknowledge(a.alarm_id, "JS", clock.t)
    m.acknowledge(a.alarm_id, "AB", clock.t + 1)
    m.acknowledge(a.alarm_id, "JS", clock.t + 2)  # the first again: not listed twice
    m.acknowledge(a.alarm_id, "AB", clock.t + 3)  # a later one again: listed once
    m.acknowledge(a.alarm_id, "CD", clock.t + 4)
    assert a.acked_by == "JS" and a.acked_also == ["AB", "CD"]
    j = a.to_json()
    assert j["acked_by"] == "JS" and j["acked_also"] == ["AB", "CD"]
    assert [r.by for r in m.audit] == ["JS", "AB", "JS", "AB", "CD"]  # every action audited
    acks = [u for u in got if u.event is Event.ACKNOWLEDGED]
    assert [u.by for u in acks] == ["JS", "AB", "JS", "AB", "CD"]
    assert acks[0].detail == {} and all(u.detail == {"again": True} for u in acks[1:])
    assert a.state is State.ACKNOWLEDGED


def test_acknowledge_needs_a_user_name_and_a_known_alarm(env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    m, _, clock = env
    feed(m, clock, HIGH, [True] * 12)
    (a,) = m.open_alarms()
    with pytest.raises(AlarmActionError, match="user name"):
        m.acknowledge(a.alarm_id, "", clock.t)
    with pytest.raises(AlarmActionError, match="user name"):
        m.acknowledge(a.alarm_id, "<script>", clock.t)
    with pytest.raises(AlarmActionError, match="no such"):
        m.acknowledge("nope", "JS", clock.t)
    assert a.state is State.ACTIVE and not m.audit


def test_silence_is_time_limited_and_audited(env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    m, got, clock = env
    feed(m, clock, MED, [True] * 12)
    (a,) = m.open_alarms()
    m.silence(a.alarm_id, "KL", 600.0, clock.t)  # capped at max_silence_s = 120
    assert a.state is State.SILENCED and not a.audible
    assert a.silenced_until == pytest.approx(clock.t + 120.0)
    assert m.audit[-1].action == "silence" and m.audit[-1].duration_s == 120.0
    m.tick(clock.t + 119.0)
    assert a.state is State.SILENCED
    m.tick(clock.t + 120.0)
    assert state_of(a) is State.ACTIVE and a.audible
    assert [u.event for u in got] == [Event.RAISED, Event.SILENCED, Event.RAISED]
    assert got[-1].detail == {"resumed": True}


def test_escalation_repeats_until_acknowledged(env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    m, got, clock = env
    feed(m, clock, HIGH, [True] * 12)  # raised at t0 + 10
    (a,) = m.open_alarms()
    t0 = a.raised_mono
    m.tick(t0 + 59.0)
    assert a.escalation == 0
    m.tick(t0 + 60.0)
    assert a.escalation == 1 and got[-1].event is Event.ESCALATED
    m.tick(t0 + 119.0)
    m.tick(t0 + 120.0)
    assert a.escalation == 2
    m.acknowledge(a.alarm_id, "JS", t0 + 121.0)
    m.tick(t0 + 500.0)
    assert a.escalation == 2


def test_low_priority_does_not_escalate_by_default(env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    m, got, clock = env
    low = ConditionSpec("temp_high", Kind.PHYSIOLOGICAL, "threshold", Priority.LOW, 0.0, False, "t", "temperature")
    feed(m, clock, low, [True])
    m.tick(clock.t + 10_000)
    assert [u.event for u in got] == [Event.RAISED]


def test_latched_alarm_reactivates_when_condition_returns(env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    m, got, clock = env
    feed(m, clock, HIGH, [True] * 12 + [False] * 3 + [True])
    (a,) = m.open_alarms()
    assert a.state is State.ACTIVE and a.condition_active
    assert [u.event for u in got] == [Event.RAISED]  # the same alarm, not a second one


def test_latched_alarm_whose_condition_comes_back_much_later_is_a_new_alarm(
        env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    """Nobody acknowledged a latched high alarm; its condition comes back 10 min after it ended (a ventricular
    tachycardia hours after a burst, say): that is a new occurrence, raised as a new alarm with its own time,
    after the condition's own delay. The latched one stays, audible, until someone acknowledges it. With
    ``recurrence_s = 0`` it is the old alarm active again, and nothing is raised."""
    m, got, clock = env
    feed(m, clock, HIGH, [True] * 12 + [False] * 600 + [True] * 12)
    raised = [u.alarm for u in got if u.event is Event.RAISED]
    assert len(raised) == 2 and raised[0].alarm_id != raised[1].alarm_id
    assert raised[1].t_wall - raised[0].t_wall == pytest.approx(612.0)
    old, new = raised
    assert old.state is State.LATCHED and new.state is State.ACTIVE
    assert sorted(a.alarm_id for a in m.open_alarms()) == sorted([old.alarm_id, new.alarm_id])
    m.acknowledge(old.alarm_id, "rn.jones", clock.t)
    assert [a.alarm_id for a in m.open_alarms()] == [new.alarm_id]  # the latched one clears, the new one stays
    got2: list[AlarmUpdate] = []
    m2 = AlarmManager(got2.append, EscalationSettings(high_s=0, medium_s=0, low_s=0), 120.0, clock, clock,
                      recurrence_s=0.0)
    feed(m2, clock, HIGH, [True] * 12 + [False] * 600 + [True] * 12)
    assert [u.event for u in got2] == [Event.RAISED]


def test_recurrence_key_is_checked_and_reaches_the_manager() -> None:
    from pydantic import ValidationError

    from clinical.alarms.profiles import ClinicalConfig
    from clinical.stage import ClinicalStage

    with pytest.raises(ValidationError) as e:
        ClinicalConfig.model_validate({"recurrence_s": -1})
    assert "recurrence_s" in str(e.value)
    assert ClinicalStage(ClinicalConfig.model_validate({"recurrence_s": 42})).manager.recurrence_s == 42


def test_technical_and_physiological_are_separate(env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    m, _, clock = env
    tech = ConditionSpec("sensor_off:spo2", Kind.TECHNICAL, "device", Priority.MEDIUM, 0.0, False, "off", "spo2")
    feed(m, clock, HIGH, [True] * 12)
    m.update("b1", "p", tech, True, clock.t)
    kinds = sorted((a.condition, a.kind.value) for a in m.open_alarms())
    assert kinds == [("sensor_off:spo2", "technical"), ("spo2_desat", "physiological")]
    m.update("b1", "p", tech, False, clock.t)
    assert [a.condition for a in m.open_alarms()] == ["spo2_desat"]


def test_sorted_open_by_priority(env: tuple[AlarmManager, list[AlarmUpdate], Clock]) -> None:
    m, _, clock = env
    feed(m, clock, MED, [True] * 12)
    feed(m, clock, HIGH, [True] * 12)
    assert [a.priority for a in m.sorted_open()] == [Priority.HIGH, Priority.MEDIUM]


def test_clear_delay_keeps_a_flapping_condition_as_one_alarm(
    env: tuple[AlarmManager, list[AlarmUpdate], Clock],
) -> None:
    m, got, clock = env
    spec = ConditionSpec("news2_medium", Kind.PHYSIOLOGICAL, "news2", Priority.MEDIUM, 5.0, False, "n", None, 60.0)
    feed(m, clock, spec, [True] * 6 + ([False] * 30 + [True] * 5) * 4)
    assert [u.event for u in got] == [Event.RAISED]
    feed(m, clock, spec, [False] * 61)
    assert [u.event for u in got] == [Event.RAISED, Event.CLEARED]
