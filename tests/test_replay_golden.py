"""`pulsegate replay` of a fixed recording gives byte-identical alarm output across refactorings.

tests/data/replay_golden.csv.gz: 8 synthetic patients x 4 h (stable, haemorrhage, sepsis; artifacts,
probe-off periods, gaps), 68,844 rows. tests/data/replay_golden.events.jsonl.gz: what
`pulsegate replay FILE --json --events` printed for it with the shipped vitals-anomaly model. Recorded
before the architecture-v2 restructuring (1962 lines, bedside thresholds); regenerated deliberately for
issue 10 (356 lines): the default profile is now the smart policy, alarms carry a reason, ids are numbered
per patient and the output is ordered by (time, patient); regenerated again when vitals-anomaly 2.0.0
shipped (304 lines); regenerated again when the rules were stated in recorded time and vitals-anomaly 2.1.0
shipped (849 lines; the recording is sampled every 5 s: before, a life-threatening run broke between any two
rows, so those paths could not fire on it at all; SpO2 steps are now "check the probe"); regenerated again when
a life-threatening run's first row began to stand for its interval (850 lines: the same five extreme heart rate
alarms, each one 5-s row earlier, and one more escalation line); regenerated again when SpO2, NIBP and
temperature deviations began to corroborate the trend together (862 lines: sep242-0003, in VT with NEWS2 8,
reads SpO2 77 % after a step, which the trend now corroborates: a desaturation instead of "check the probe";
hae242-0005's trend 3 min earlier); regenerated again when heart rate and resp up together for longer than an
activity bout began to leave the capped 30-minute path and the corroborated trend to count 1.3x (864 lines:
hae242-0007, a haemorrhage, gets a trend alarm, "HR and resp up together for 15 min, longer than activity lasts",
that it never had; sep242-0002's trend 3 min earlier, hae242-0005's 1 min earlier); regenerated again when the
shock index became a condition (881 lines: sep242-0002, hae242-0005 and hae242-0007, a sepsis and two
haemorrhages, each get a shock-index alarm after their first alarm; no patient's first alarm moved); regenerated
again when the trend's 30-minute path began to count heart rate and resp only beyond the normal band (876 lines:
hae242-0001, a haemorrhage at HR 104 with resp 18, loses the trend alarm that was its first medium alarm, so its
first is the model's, 3 min later, and its trend comes 13 min after that; the trend of hae242-0005 and hae242-0007
1-2 min later); regenerated again when an SpO2 that comes back from a dropout far lower began to open a step and a
burst of tachycardia stopped corroborating (878 lines: hae242-0007's SpO2 67 % after a 30-s dropout is "check the
probe" with its no-data line instead of a shown SpO2 low, so the model no longer sees it and its anomaly alarm, the
patient's first medium one, comes 1 min earlier); regenerated again when an open SpO2 step began to close only once
its readings stayed back for 10 s (878 lines: 20 "check the probe" lines clear 10 s later, two 5-s rows; no
alarm moved); regenerated again when a latched alarm whose condition comes back more than 5 min after it
ended became a new alarm (948 lines: sep242-0003's ventricular tachycardia and a second burst of tachycardia on
sta242-0004 are raised, with their escalations, instead of going unseen inside the unacknowledged alarm of an
earlier burst); regenerated again when the NIBP reasons began to name the patient's own baseline (948 lines: the
seven nibp_sys_low lines of hae242-0005 and hae242-0007 say "own 126" and "own 119"; no alarm moved); regenerated
again when the anomaly alarm's reason began to say when the threshold was reached and the highest score since
(948 lines: the 64 anomaly lines of five patients, "reached 2 min ago, highest 0.873"; no alarm moved). A change
that is meant to change alarms regenerates it in a commit of its own that says why.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def test_replay_output_is_byte_identical(tmp_path: Path) -> None:
    csv = tmp_path / "golden.csv"
    csv.write_bytes(gzip.decompress((DATA / "replay_golden.csv.gz").read_bytes()))
    expected = gzip.decompress((DATA / "replay_golden.events.jsonl.gz").read_bytes())
    res = subprocess.run([sys.executable, "-m", "pulsegate", "replay", str(csv), "--json", "--events"],
                         cwd=REPO, capture_output=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(expected.splitlines()) == 948
    assert res.stdout == expected
