"""Alarm rules are stated in recorded time, not in samples: the same ward recorded at 1 s and exported
every 15 s (cloud/training/ward_resample.py) gives the same alarm conditions, within what the sparser
record allows (an alarm can only come with a row: up to two 15-s intervals later).

The life-threatening events here start without motion: a ventricular tachycardia that begins during
motion is told from the motion by rows a 15-s export does not have (test_smart_alarms.py covers it at 1 s).
Motion, probe-off and the other confounders stay in the stable and slower scenarios."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from clinical.replay import replay
from cloud.training.ward_resample import Resample, parse_spec, resample_csv
from cloud.training.ward_scenarios import WardLabel, WardParams, generate_ward, write_ward_csv

SERIOUS = ("medium", "high")


def _serious(path: Path) -> dict[str, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []
    replay(path, got.append)
    out: dict[str, list[dict[str, Any]]] = {}
    for a in got:
        if a["priority"] in SERIOUS and a["kind"] != "technical":
            out.setdefault(a["patient"], []).append(a)
    return out


def _first_in_window(alarms: list[dict[str, Any]], lab: WardLabel) -> float | None:
    assert lab.onset is not None and lab.end is not None
    hits = [float(a["epoch"]) for a in alarms if lab.onset - 600 <= float(a["epoch"]) <= lab.end + 1800]
    return min(hits) if hits else None


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[WardLabel], Path, Path]:
    wp = WardParams(hours=2.5)
    bare = replace(wp, with_pulse_rate=False, with_perfusion=False)  # an ECG + SpO2-only monitor
    still = replace(wp, motion_per_h=0.0)
    scen = [generate_ward(5151, 0, still, "vtach"), generate_ward(5151, 1, replace(bare, motion_per_h=0.0),
                                                                  "resp_arrest"),
            generate_ward(5151, 2, wp, "haemorrhage"), generate_ward(5151, 3, bare, "acute_desat"),
            generate_ward(5151, 4, wp, "stable"), generate_ward(5151, 5, bare, "stable")]
    d = tmp_path_factory.mktemp("sampling")
    one = d / "1s.csv"
    write_ward_csv(scen, one, "grouped")
    fifteen = d / "15s.csv"
    resample_csv(one, fifteen, Resample(every_s=(15.0,)))
    return [s.label for s in scen], one, fifteen


def test_resampling_keeps_one_row_per_interval_and_the_intermittent_rows(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    rows = ["timestamp,patient,parameter,value"]
    rows += [f"{1000 + s},p,heart_rate,{70 + s % 3}" for s in range(600)]
    rows += ["1100,p,nibp_sys,120", "1100,p,nibp_dia,80", "1000,p,on_oxygen,1"]
    src.write_text("\n".join(rows) + "\n")
    dst = tmp_path / "out.csv"
    n = resample_csv(src, dst, parse_spec("every=60;decimals=1;order=sorted"))
    lines = dst.read_text().splitlines()[1:]
    hr = [ln for ln in lines if ",heart_rate," in ln]
    assert 9 <= len(hr) <= 10 and n == len(lines)
    assert all(ln.split(",")[3].endswith((".0",)) for ln in hr)  # written with one decimal
    assert "1100.0,p,nibp_sys,120.0" in lines and "1000.0,p,on_oxygen,1" in lines
    with pytest.raises(ValueError, match="every"):
        parse_spec("every=0")
    with pytest.raises(ValueError, match="bogus"):
        parse_spec("bogus=1")


def test_same_ward_at_1_s_and_15_s_gives_the_same_alarm_conditions(
        ward: tuple[list[WardLabel], Path, Path]) -> None:
    labels, one, fifteen = ward
    a1, a15 = _serious(one), _serious(fifteen)
    for lab in labels:
        m1, m15 = a1.get(lab.patient, []), a15.get(lab.patient, [])
        if lab.onset is None:  # stable: as quiet at 15 s as at 1 s (an episode more or less at most)
            assert abs(len({round(float(a["epoch"]) / 300) for a in m1})
                       - len({round(float(a["epoch"]) / 300) for a in m15})) <= 1, (lab.patient, m1, m15)
            continue
        t1, t15 = _first_in_window(m1, lab), _first_in_window(m15, lab)
        assert t1 is not None and t15 is not None, (lab.kind, t1, t15)
        if lab.life_threatening:
            # the same life-threatening condition, at most two 15-s rows after the 1 s record's alarm
            c1 = {a["condition"] for a in m1 if a["priority"] == "high"}
            c15 = {a["condition"] for a in m15 if a["priority"] == "high"}
            assert c1 & c15, (lab.kind, c1, c15)
            assert -15.0 <= t15 - t1 <= 30.0, (lab.kind, t1, t15)
        else:
            assert abs(t15 - t1) <= 300.0, (lab.kind, t1, t15)
