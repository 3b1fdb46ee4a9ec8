"""What a shadow report must show (cloud.rollout_plan.judge, pure): a regression is a difference in either
direction on the bed-windows where the two models decided differently that chance does not explain."""

from __future__ import annotations

from cloud.rollout_plan import Criteria, discordant, judge, sign_p
from wire.messages import ShadowReport

C = Criteria()


def report(windows: int, agree: int, cand: int, active: int, beds: tuple[int, int, int] = (0, 0, 0)) -> ShadowReport:
    """``beds``: (the candidate alarmed on, the active model, both); all 0 = a gateway that reports no beds."""
    return ShadowReport(v=2, gw="gw-1", seq=1, t=0, model="vitals-anomaly", version="2.1.0", active="2.0.0",
                        rollout="r1", state="shadow", rounds=50, bed_windows=windows, agreement=agree / windows,
                        cand_alarms=cand, active_alarms=active, invoke_ms_p50=1.0, invoke_ms_max=2.0,
                        cand_beds=beds[0], active_beds=beds[1], both_beds=beds[2])


def test_discordant_windows_are_derived_from_agreement_and_counts() -> None:
    # 654 windows, 651 agreed, candidate 4 vs active 1: three alone for the candidate, none for the active
    assert discordant(report(654, 651, 4, 1)) == (3, 0)
    assert discordant(report(100, 90, 12, 8)) == (7, 3)
    assert sign_p(3, 3) == 0.125 and sign_p(0, 5) == 1.0 and abs(sign_p(5, 5) - 1 / 32) < 1e-12


def test_a_handful_of_extra_windows_is_not_a_regression() -> None:
    """The demo's case: 4 bed-windows against 1 over 654 rolled a gate-passed candidate back."""
    assert judge(report(654, 651, 4, 1), C) is None


def test_a_candidate_that_alarms_much_more_is_rolled_back() -> None:
    why = judge(report(600, 565, 40, 5), C)
    assert why is not None and "alarmed on 40 bed-windows against 5" in why


def test_a_candidate_that_stops_alarming_is_rolled_back() -> None:
    """Silent where the active model alarmed on 30 of 600 bed-windows: agreement is still 0.95, and the
    alarm-count rule alone would have let it through."""
    r = report(600, 570, 0, 30)
    assert r.agreement >= C.min_agreement and r.cand_alarms <= C.max_alarm_ratio * r.active_alarms
    why = judge(r, C)
    assert why is not None and "stayed silent on 30 bed-windows" in why
    assert judge(report(600, 597, 0, 3), C) is None  # three windows: within the slack


def test_an_earlier_warning_on_the_same_bed_is_not_an_extra_alarm() -> None:
    """The demo at --duration 240: a gate-passed candidate alarmed on 7 bed-windows against 2, five of them
    alone, all on the bed both models alarmed for. On bed-windows alone that reads as a regression."""
    assert judge(report(654, 649, 7, 2), C) is not None  # a gateway that reports no beds: bed-windows
    assert judge(report(654, 649, 7, 2, beds=(1, 1, 1)), C) is None
    why = judge(report(654, 640, 14, 0, beds=(6, 0, 0)), C)  # six beds the active model was quiet on
    assert why is not None and "on 6 beds the active model did not alarm on" in why



def test_invoke_time_rolls_back_a_slow_model_not_one_slow_batch() -> None:
    """A loaded machine made one batch of the demo's candidate take 61 ms (median 0.3 ms): that rolled back
    a candidate the gate had passed. The median says whether the model is slow; a stall still rolls back."""
    from msgspec.structs import replace

    ok = report(600, 600, 3, 3, beds=(1, 1, 1))
    assert judge(replace(ok, invoke_ms_p50=0.3, invoke_ms_max=61.2), C) is None
    slow = judge(replace(ok, invoke_ms_p50=80.0, invoke_ms_max=120.0), C)
    assert slow is not None and "median" in slow
    stall = judge(replace(ok, invoke_ms_p50=0.3, invoke_ms_max=900.0), C)
    assert stall is not None and "slowest invoke 900.0 ms" in stall
