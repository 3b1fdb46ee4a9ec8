"""Replay is right whatever the row order: sorted, grouped by patient, locally shuffled give identical alarms;
duplicates and rows far back in time are counted; and a small held-out ward set meets the floors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from clinical.replay import replay
from cloud.training.alarm_eval import score_stream
from cloud.training.ward_scenarios import (
    WardParams,
    generate_ward,
    generate_ward_set,
    heldout_ward_params,
    write_ward_csv,
)


def _run(path: Path, **kw: Any) -> tuple[list[str], Any]:
    got: list[dict[str, Any]] = []
    stats = replay(path, got.append, events=True, **kw)
    return [json.dumps(r, sort_keys=True) for r in got], stats


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    wp = replace(WardParams(hours=2.0), motion_per_h=8.0, half_off_per_h=0.5, cuff_error_fraction=0.3,
                 apnoea_fraction=1.0)
    scen = [generate_ward(4242, 0, wp, "vtach"), generate_ward(4242, 1, wp, "stable"),
            generate_ward(4242, 2, replace(wp, copd_fraction=1.0), "acute_desat")]
    d = tmp_path_factory.mktemp("order")
    out = {}
    for order in ("grouped", "sorted", "shuffled"):
        out[order] = d / f"{order}.csv"
        write_ward_csv(scen, out[order], order, seed=7, shuffle_s=5.0)
    return out


def test_sorted_grouped_and_shuffled_give_identical_alarms(ward: dict[str, Path]) -> None:
    ref, st = _run(ward["sorted"])
    assert len(ref) > 10 and st.order.late == 0
    for order in ("grouped", "shuffled"):
        got, st2 = _run(ward[order])
        assert st2.order.late == 0 and st2.rows == st.rows
        assert got == ref, order
    ids = [json.loads(r)["alarm_id"] for r in ref]
    assert all(i.split(".")[-1].isdigit() for i in ids)  # numbered per patient: no global counter


def test_duplicates_and_rows_far_back_are_counted_never_applied(ward: dict[str, Path], tmp_path: Path) -> None:
    lines = ward["grouped"].read_text().splitlines()
    ref, _ = _run(ward["grouped"])
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join([*lines[:5000], *lines[3000:5000], *lines[5000:]]) + "\n")  # 2000 rows again
    got, st = _run(dup)
    # rows repeated within the window are duplicates; older ones are late (behind the patient's clock)
    assert st.order.duplicates + st.order.late == 2000 and st.order.late > 0
    assert st.order.late_lines and st.order.late_lines[0] == 5001  # lines[3000] is line 3001, now at 5001
    assert got == ref


def test_the_first_patient_does_not_block_the_others_clock(tmp_path: Path) -> None:
    """Grouped by patient: patient B's rows start earlier than A's last; B still runs on its own clock."""
    rows = ["timestamp,patient,parameter,value"]
    t0 = 1_767_225_600
    for p, start in (("A", t0 + 7200), ("B", t0)):
        for s in range(0, 1800):
            t = start + s
            rows += [f"{t},{p},heart_rate,{80}", f"{t},{p},resp_rate,{0 if 900 <= s < 960 else 16}",
                     f"{t},{p},spo2,97"]
    f = tmp_path / "g.csv"
    f.write_text("\n".join(rows) + "\n")
    got: list[dict[str, Any]] = []
    st = replay(f, got.append)
    lost = sorted((a["patient"], a["epoch"]) for a in got if a["condition"] == "resp_lost")
    assert [p for p, _ in lost] == ["A", "B"]
    assert lost[1][1] - (t0 + 900) <= 10.0 and st.order.late == 0


def test_small_heldout_set_meets_the_floors(tmp_path: Path) -> None:
    """Held-out seed and parameters (never tuned on): the issue's floors on 10 patients x 3 h.

    Deteriorations of minutes only (haemorrhage, acute desaturation, respiratory arrest, ventricular
    tachycardia): sepsis and respiratory failure take hours, more than a test of seconds can replay
    (`pulsegate model eval alarms` scores them, figures in docs/clinical.md)."""
    wp = replace(heldout_ward_params(), hours=3.0, deteriorating_fraction=0.6, kind_weights=(0, 0, 1, 1, 1, 1))
    scen = generate_ward_set(31337, 10, wp)
    path = tmp_path / "heldout.csv"
    write_ward_csv(scen, path)
    alarms: list[dict[str, Any]] = []
    replay(path, alarms.append)
    m = score_stream("default", [s.label for s in scen], alarms).as_dict()
    assert m["deteriorating"] >= 4
    assert m["sensitivity"] >= 0.95, m
    assert m["fa_episodes_per_patient_day"] <= 0.5 * 4, m  # 0.5 per patient-day; a few hours allow one episode
    # the life-threatening events are half developed seconds after onset: they count by time to alarm
    assert m["lead_min_median_non_lt"] >= 0.0, m
    assert m["lt_alarmed_within_10s"] == m["life_threatening"], m
    for a in alarms:
        assert a["reason"] or a["kind"] == "technical"


def test_parallel_replay_gives_the_same_output(ward: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from pulsegate.cli import main

    outs = []
    for jobs in ("1", "2"):
        assert main(["replay", str(ward["shuffled"]), "--json", "--events", "--no-model", "--jobs", jobs]) == 0
        out, err = capsys.readouterr()
        outs.append((out, json.loads(err.strip().splitlines()[-1])["replay"]))
    assert outs[0][0] == outs[1][0] and outs[0][0].count("\n") > 10
    assert outs[0][1] == outs[1][1]  # the merged statistics too
