"""NEWS2 Chart 1 at every band edge and the Chart 4 responses (RCP 2017; ../shared/REFERENCES.md)."""

from __future__ import annotations

from typing import Any

import pytest

from clinical.news2 import (
    Response,
    news2,
    response_for,
    score_air_oxygen,
    score_consciousness,
    score_pulse,
    score_resp_rate,
    score_spo2,
    score_systolic,
    score_temperature,
)


@pytest.mark.parametrize(
    ("rr", "want"),
    [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3),
     (8.4, 3), (8.5, 1), (20.49, 0), (20.5, 2), (24.5, 3)],
)
def test_resp_rate_bands(rr: float, want: int) -> None:
    assert score_resp_rate(rr) == want


@pytest.mark.parametrize(
    ("spo2", "want"), [(70, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0), (91.5, 2)]
)
def test_spo2_scale1_bands_ignore_oxygen(spo2: float, want: int) -> None:
    assert score_spo2(spo2, scale2=False, on_oxygen=False) == want
    assert score_spo2(spo2, scale2=False, on_oxygen=True) == want


@pytest.mark.parametrize(
    ("spo2", "on_air", "on_o2"),
    [
        (75, 3, 3), (83, 3, 3), (84, 2, 2), (85, 2, 2), (86, 1, 1), (87, 1, 1),
        (88, 0, 0), (92, 0, 0),
        # >= 93: 0 on air; on oxygen 93-94 -> 1, 95-96 -> 2, >= 97 -> 3
        (93, 0, 1), (94, 0, 1), (95, 0, 2), (96, 0, 2), (97, 0, 3), (100, 0, 3),
    ],
)
def test_spo2_scale2_air_vs_oxygen(spo2: int, on_air: int, on_o2: int) -> None:
    assert score_spo2(spo2, scale2=True, on_oxygen=False) == on_air
    assert score_spo2(spo2, scale2=True, on_oxygen=True) == on_o2


def test_air_or_oxygen() -> None:
    assert score_air_oxygen(False) == 0
    assert score_air_oxygen(True) == 2


@pytest.mark.parametrize(
    ("sbp", "want"),
    [(60, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3), (260, 3)],
)
def test_systolic_bands(sbp: int, want: int) -> None:
    assert score_systolic(sbp) == want


@pytest.mark.parametrize(
    ("hr", "want"),
    [(30, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2), (131, 3)],
)
def test_pulse_bands(hr: int, want: int) -> None:
    assert score_pulse(hr) == want


@pytest.mark.parametrize(("level", "want"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)])
def test_acvpu(level: str, want: int) -> None:
    assert score_consciousness(level) == want


def test_acvpu_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="consciousness"):
        score_consciousness("X")


@pytest.mark.parametrize(
    ("temp", "want"),
    [(34.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1), (39.1, 2), (41.0, 2),
     (35.04, 3), (35.05, 1), (38.04, 0)],
)
def test_temperature_bands(temp: float, want: int) -> None:
    assert score_temperature(temp) == want


NORMAL: dict[str, Any] = {"resp_rate": 16.0, "spo2": 97.0, "systolic": 125.0, "pulse": 75.0, "temperature": 36.8}


def test_all_normal_is_zero_routine() -> None:
    r = news2(**NORMAL)
    assert r.total == 0 and r.response is Response.ROUTINE and r.complete and not r.single_parameter_3


def test_oxygen_alone_scores_two_low() -> None:
    r = news2(**NORMAL, on_oxygen=True)
    assert r.total == 2 and r.subscores["air_oxygen"] == 2 and r.response is Response.LOW


def test_single_parameter_three_is_low_medium_even_with_low_total() -> None:
    r = news2(**{**NORMAL, "resp_rate": 26.0})
    assert r.total == 3 and r.single_parameter_3 and r.response is Response.LOW_MEDIUM
    r = news2(**NORMAL, consciousness="V")
    assert r.total == 3 and r.response is Response.LOW_MEDIUM


def test_totals_map_to_chart4() -> None:
    # pulse 115 (2) + resp 22 (2) + temp 38.5 (1) = 5: medium
    r = news2(**{**NORMAL, "pulse": 115.0, "resp_rate": 22.0, "temperature": 38.5})
    assert r.total == 5 and r.response is Response.MEDIUM
    # + spo2 94 (1) = 6: still medium
    r = news2(**{**NORMAL, "pulse": 115.0, "resp_rate": 22.0, "temperature": 38.5, "spo2": 94.0})
    assert r.total == 6 and r.response is Response.MEDIUM
    # + systolic 105 (1) = 7: high
    r = news2(**{**NORMAL, "pulse": 115.0, "resp_rate": 22.0, "temperature": 38.5, "spo2": 94.0, "systolic": 105.0})
    assert r.total == 7 and r.response is Response.HIGH


@pytest.mark.parametrize(
    ("total", "three", "want"),
    [(0, False, Response.ROUTINE), (1, False, Response.LOW), (4, False, Response.LOW), (3, True, Response.LOW_MEDIUM),
     (4, True, Response.LOW_MEDIUM), (5, False, Response.MEDIUM), (6, True, Response.MEDIUM),
     (7, False, Response.HIGH), (12, True, Response.HIGH)],
)
def test_response_for(total: int, three: bool, want: Response) -> None:
    assert response_for(total, three) is want


def test_scale2_patient_on_oxygen_full_score() -> None:
    # hypercapnic patient, target 88-92, on O2, SpO2 97: scale 2 gives 3, oxygen 2
    r = news2(**NORMAL, on_oxygen=True, scale2=True)
    assert r.subscores["spo2"] == 3 and r.total == 5 and r.response is Response.MEDIUM
    r = news2(**{**NORMAL, "spo2": 90.0}, on_oxygen=True, scale2=True)
    assert r.subscores["spo2"] == 0 and r.total == 2


def test_missing_parameters_give_a_lower_bound() -> None:
    r = news2(resp_rate=26.0, spo2=None, systolic=None, pulse=80.0, temperature=None)
    assert r.total == 3 and not r.complete and set(r.missing) == {"spo2", "systolic", "temperature"}
