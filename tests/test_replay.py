"""`pulsegate replay FILE.csv --json` on small recorded files: expected alarms, bad rows counted."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest

from clinical.alarms.profiles import ClinicalConfig
from clinical.replay import ReplayError, parse_time, replay
from pulsegate.cli import main

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
BEDSIDE = ClinicalConfig(default_profile="bedside", scale2_profile="bedside-copd")  # single thresholds


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


def write_ward(path: Path) -> None:
    rows = ["timestamp,patient,parameter,value"]
    rows.append(f"{T0},copd-1,spo2_scale2,1")
    rows.append(f"{T0},copd-1,on_oxygen,1")
    for s in range(0, 400):
        t = T0 + s
        ts = _iso(t) if s % 2 else f"{t:.1f}"  # both ISO 8601 and epoch seconds
        hr = 150 if 60 <= s < 80 else 80  # 20 s tachycardia: one medium alarm
        spo2 = "" if 100 <= s < 160 else "97"  # a minute with no valid SpO2: technical only
        rows += [f"{ts},tachy-1,heart_rate,{hr}", f"{ts},tachy-1,spo2,{spo2}", f"{ts},tachy-1,resp_rate,16"]
        rows += [f"{ts},copd-1,heart_rate,80", f"{ts},copd-1,spo2,89", f"{ts},copd-1,resp_rate,16"]
        if s == 200:  # a single 1-s artifact: no alarm
            rows.append(f"{ts},copd-1,heart_rate,210")
    rows.append(f"{T0 + 5},tachy-1,heart_rate,abc")
    rows.append("not-a-time,tachy-1,heart_rate,80")
    rows.append(f"{T0 + 6},tachy-1,blood_type,0")
    rows.append(f"{T0 + 7},tachy-1,consciousness,Z")
    path.write_text("\n".join(rows) + "\n")


def test_replay_expected_alarms(tmp_path: Path) -> None:
    f = tmp_path / "ward.csv"
    write_ward(f)
    got: list[dict[str, Any]] = []
    stats = replay(f, got.append, BEDSIDE)
    conds = sorted((a["patient"], a["condition"]) for a in got)
    assert conds == [("tachy-1", "heart_rate_high"), ("tachy-1", "no_data:spo2")]
    hr = next(a for a in got if a["condition"] == "heart_rate_high")
    assert hr["priority"] == "medium" and hr["kind"] == "physiological" and hr["source"] == "threshold"
    assert 69.0 <= float(hr["epoch"]) - T0 <= 71.0  # 10 s condition delay
    assert str(hr["time"]).startswith("2026-01-01T00:01:") and str(hr["time"]).endswith("Z")
    tech = next(a for a in got if a["condition"] == "no_data:spo2")
    assert tech["kind"] == "technical" and tech["score"] is None
    assert stats.rejected == {"bad_value": 1, "bad_timestamp": 1, "unknown_parameter": 1, "bad_consciousness": 1}
    assert stats.patients == 2 and stats.invalid_samples == 60 and stats.context_rows == 2
    # the default (smart) profile: a 20 s excursion to 150 that resolves on its own is not a medium alarm,
    # the lost SpO2 is a low-priority technical alarm
    smart: list[dict[str, Any]] = []
    replay(f, smart.append)
    assert [(a["condition"], a["priority"]) for a in smart] == [("no_data:spo2", "low")]


def test_cli_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "ward.csv"
    write_ward(f)
    assert main(["replay", str(f), "--json", "--no-model", "--profile", "bedside"]) == 0
    out, err = capsys.readouterr()
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == 2
    for r in recs:
        assert {"time", "patient", "priority", "kind", "source", "score"} <= set(r)
    assert json.loads(err.strip().splitlines()[-1])["replay"]["alarms_raised"] == 2


def test_epoch_units_and_european_exports(tmp_path: Path) -> None:
    """Epoch milliseconds or microseconds are not read as seconds (a clock 1000x too fast), and a semicolon
    or tab export with decimal commas gives the alarms of the plain file; a bad value there is still counted."""
    f = tmp_path / "ward.csv"
    write_ward(f)
    lines = f.read_text().splitlines()
    want: list[dict[str, Any]] = []
    want_stats = replay(f, want.append, BEDSIDE)
    assert want

    def rewrite(cells: list[str], scale: float | None, sep: str) -> str:
        t, rest = cells[0], cells[1:]
        if scale is not None:
            try:
                t = str(round(float(t) * scale))
            except ValueError:
                t = t if t == "not-a-time" else str(round(parse_time(t) * scale))
        context = rest[1] in ("spo2_scale2", "on_oxygen", "consciousness")
        if sep != "," and not context and rest[2].replace(".", "", 1).isdigit():
            rest[2] = rest[2].replace(".", ",") if "." in rest[2] else rest[2] + ",0"
        return sep.join([t, *rest])

    for scale, sep in ((1e3, ","), (1e6, ","), (None, ";"), (1e3, "\t")):
        body = [lines[0].replace(",", sep)] + [rewrite(line.split(","), scale, sep) for line in lines[1:]]
        got: list[dict[str, Any]] = []
        stats = replay(io.StringIO("\n".join(body) + "\n"), got.append, BEDSIDE)
        assert [(a["patient"], a["condition"], a["epoch"]) for a in got] == \
            [(a["patient"], a["condition"], a["epoch"]) for a in want], (scale, sep)
        assert stats.rejected == want_stats.rejected and stats.samples == want_stats.samples
    assert parse_time("1767225600000") == T0 and parse_time("1767225600000000") == T0


def test_gzip_and_non_utf8_files(tmp_path: Path) -> None:
    """A .csv.gz is read as it is (the CLI's own example), and a Windows-1252 byte in a wide header (a degree
    sign) is replaced, not a traceback: the column is still recognised by its name."""
    import gzip

    f = tmp_path / "ward.csv"
    write_ward(f)
    want: list[dict[str, Any]] = []
    replay(f, want.append, BEDSIDE)
    gz = tmp_path / "ward.csv.gz"
    gz.write_bytes(gzip.compress(f.read_bytes()))
    got: list[dict[str, Any]] = []
    replay(gz, got.append, BEDSIDE)
    assert got == want and want
    wide = tmp_path / "wide.csv"
    wide.write_bytes(b"Time,Patient ID,HR (bpm),Temp (\xb0C)\n" +
                     b"".join(b"%d,p1,%d,37.0\n" % (T0 + s, 150 if 60 <= s < 80 else 80) for s in range(200)))
    wide_alarms: list[dict[str, Any]] = []
    stats = replay(wide, wide_alarms.append, BEDSIDE)
    assert stats.samples == 400 and not stats.ignored_columns and stats.rejected == {}
    assert [a["condition"] for a in wide_alarms] == ["heart_rate_high"]


def test_news2_policy_from_recorded_context() -> None:
    rows = ["timestamp,patient,parameter,value", f"{T0},p,consciousness,V", f"{T0},p,nibp_sys,120",
            f"{T0},p,temperature,36.9"]
    for s in range(0, 700, 5):
        rows += [f"{T0 + s},p,heart_rate,95", f"{T0 + s},p,spo2,95", f"{T0 + s},p,resp_rate,22"]
    for cfg in (BEDSIDE, None):  # the smart default keeps NEWS2's emergency response when not alert
        got: list[dict[str, Any]] = []
        replay(io.StringIO("\n".join(rows)), got.append, cfg)
        # V (3) + HR 95 (1) + SpO2 95 (1) + RR 22 (2) = 7 -> emergency, after the 300 s NEWS2 delay
        (a,) = [a for a in got if a["source"] == "news2"]
        assert a["condition"] == "news2_high" and a["priority"] == "high" and a["score"] == 7.0
        assert 299.0 <= float(a["epoch"]) - T0 <= 306.0
        assert a["reason"].startswith("NEWS2 7: ") and "consciousness 3" in a["reason"]


def test_bad_files() -> None:
    with pytest.raises(ReplayError, match="header"):
        replay(io.StringIO("time,who,what\n1,2,3\n"), lambda r: None)
    with pytest.raises(ReplayError, match="empty"):
        replay(io.StringIO(""), lambda r: None)
    with pytest.raises(ReplayError):
        replay(Path("/nonexistent/x.csv"), lambda r: None)


def test_parse_time() -> None:
    assert parse_time("1767225600") == T0
    assert parse_time("2026-01-01T00:00:00Z") == T0
    assert parse_time("2026-01-01T01:00:00+01:00") == T0
    assert parse_time("2026-01-01 00:00:00") == T0
    with pytest.raises(ValueError):
        parse_time("nan")
