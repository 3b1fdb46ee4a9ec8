"""A wide export (a column per parameter, common names, units in the header) replays exactly as PulseGate's
long layout does; names that mean nothing are refused with the columns found."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from clinical.replay import ReplayError, replay
from clinical.replay_columns import canonical, normalise
from cloud.training.ward_scenarios import WardParams, generate_ward, write_ward_csv

HEADER = {"heart_rate": "HR (bpm)", "pulse_rate": "PR", "spo2": "SpO2 [%]", "resp_rate": "Resp. Rate",
          "nibp_sys": "SBP", "nibp_dia": "DBP", "nibp_mean": "MAP (mmHg)", "temperature": "Temp",
          "perfusion_index": "PI", "consciousness": "AVPU", "on_oxygen": "O2", "spo2_scale2": "scale2"}


def _run(source: Path | io.StringIO) -> tuple[list[str], Any]:
    got: list[dict[str, Any]] = []
    stats = replay(source, got.append, events=True)
    return [json.dumps(r, sort_keys=True) for r in got], stats


def _to_wide(long_csv: Path, out: Path) -> int:
    """Pivot on (timestamp, patient); an invalid reading becomes "---", as monitors' exports print it."""
    cells: dict[tuple[str, str], dict[str, str]] = {}
    with long_csv.open(newline="") as f:
        for r in csv.DictReader(f):
            slot = cells.setdefault((r["timestamp"], r["patient"]), {})
            assert r["parameter"] not in slot  # one reading per parameter and second in the generator
            slot[HEADER[r["parameter"]]] = r["value"] or "---"
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Time", "Patient ID", *HEADER.values()])
        for (t, patient), vals in cells.items():
            w.writerow([t, patient, *(vals.get(h, "") for h in HEADER.values())])
    return len(cells)


@pytest.fixture(scope="module")
def long_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wp = replace(WardParams(hours=1.0), motion_per_h=8.0, half_off_per_h=1.0, cuff_error_fraction=0.3)
    scen = [generate_ward(5151, 0, wp, "acute_desat"), generate_ward(5151, 1, wp, "stable"),
            generate_ward(5151, 2, wp, "haemorrhage")]
    path = tmp_path_factory.mktemp("cols") / "long.csv"
    write_ward_csv(scen, path, "sorted", seed=3)
    return path


def test_a_wide_export_gives_the_alarms_of_the_long_layout(long_csv: Path, tmp_path: Path) -> None:
    ref, st = _run(long_csv)
    assert len(ref) > 5 and st.invalid_samples > 0  # the probe-off periods are in the file
    wide = tmp_path / "wide.csv"
    assert _to_wide(long_csv, wide) < st.rows  # fewer lines than readings: really wide
    got, st2 = _run(wide)
    assert (st2.samples, st2.invalid_samples, st2.context_rows) == (st.samples, st.invalid_samples,
                                                                    st.context_rows)
    assert got == ref
    assert not st2.rejected and not st2.ignored_columns


def test_common_names_work_in_the_long_layout_too(long_csv: Path, tmp_path: Path) -> None:
    lines = long_csv.read_text().splitlines()
    renamed = [lines[0]]
    for line in lines[1:]:
        t, patient, param, value = line.split(",")
        renamed.append(",".join([t, patient, HEADER[param], value]))
    path = tmp_path / "renamed.csv"
    path.write_text("\n".join(renamed) + "\n")
    assert _run(path)[0] == _run(long_csv)[0]


def test_names_are_normalised_and_ambiguous_ones_are_not_guessed() -> None:
    assert normalise("  SpO2 [%] ") == "spo2" and normalise("Resp. Rate") == "resp_rate"
    assert canonical("HR (bpm)") == "heart_rate" and canonical("NIBP-S") == "nibp_sys"
    assert canonical("pulse") is None and canonical("SaO2") is None  # ECG or pleth? a blood gas?


def test_a_wide_file_keeps_bad_cells_counted_and_the_good_ones(tmp_path: Path) -> None:
    text = ("time,patient,HR,SpO2,Temp,Ward\n"
            "1700000000,bed1,80,97,\n"
            "1700000001,bed1,abc,97,36.9\n"  # one bad cell: the row's other readings still count
            "1700000002,bed1\n"  # nothing measured this second: nothing to count
            "1700000002\n"  # short row
            "1700000003,,81,96,\n")  # no patient
    _, st = _run(io.StringIO(text))
    assert st.samples == 4 and st.rejected == {"bad_value": 1, "short_row": 1, "no_patient": 2}
    assert st.ignored_columns == ["Ward"] and st.as_dict()["ignored_columns"] == ["Ward"]
    assert st.rejected_lines == [3, 5, 6, 6]


def test_a_header_without_patients_or_parameters_is_refused_naming_what_it_found() -> None:
    with pytest.raises(ReplayError, match=r"patient.*found time, heart_rate"):
        _run(io.StringIO("time,heart_rate\n1,80\n"))
    with pytest.raises(ReplayError, match="parameter, value"):
        _run(io.StringIO("timestamp,patient,colour\n1,p,blue\n"))


def test_the_replay_command_warns_about_ignored_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pulsegate.cli import main

    path = tmp_path / "export.csv"
    path.write_text("Time,Patient ID,HR (bpm),Ward,SpO2 [%]\n"
                    + "".join(f"{1700000000 + i},bed1,{80 + i % 3},7B,97\n" for i in range(120)))
    assert main(["replay", str(path), "--json", "--no-model"]) == 0
    err = capsys.readouterr().err
    summary = json.loads(err.strip().splitlines()[-1])["replay"]
    assert summary["samples"] == 240 and summary["ignored_columns"] == ["Ward"]
    assert "ignored: Ward" in err
