"""`pulsegate model eval alarms`: the named generator bases and the flags that change them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from cloud.training.ward_scenarios import WardParams, clean_ward_params, heldout_ward_params
from pulsegate.cli import main
from pulsegate.commands.model import _ward_params

# The clean ward as docs/heldout-issue10.md declared it for sets H and L, before it had a name.
CLEAN_FLAGS = ["noise_scale=0.6", "motion_per_h=1.0", "motion_flagged=0.5", "activity_per_h=0.3",
               "half_off_per_h=0.02", "probe_off_per_h=0.15", "cuff_error_fraction=0.04", "apnoea_fraction=0.05",
               "arrhythmia_per_h=0.2", "severity=0.6,1.2", "shape=1.0,2.2", "athlete_fraction=0.06",
               "tachy_fraction=0.06", "copd_fraction=0.15"]


def test_clean_base_is_the_declared_clean_ward() -> None:
    assert clean_ward_params() == replace(heldout_ward_params(), **_ward_params(CLEAN_FLAGS))
    assert clean_ward_params() != WardParams() and clean_ward_params() != heldout_ward_params()


def test_eval_alarms_on_a_clean_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["model", "eval", "alarms", "--ward-base", "clean", "--scenarios", "3", "--hours", "1", "--seed", "5",
               "--no-model", "--json", "--workdir", str(tmp_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["patients"] == 3 and set(out["streams"]) == {"default", "news2", "bedside"}
    labels = [json.loads(line) for line in (tmp_path / "ward.labels.jsonl").read_text().splitlines()]
    assert len(labels) == 3 and out["deteriorating"] == sum(lb["kind"] != "stable" for lb in labels)
    assert out["replay_default"]["rows"] == out["replay_bedside"]["rows"] > 3 * 3000  # 1 h of 1 Hz rows each


def test_bad_ward_flags_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["model", "eval", "alarms", "--ward-base", "noisy", "--no-model"])
    assert "--ward-base" in capsys.readouterr().err
    assert main(["model", "eval", "alarms", "--ward-base", "clean", "--ward-param", "nosuch=1", "--no-model"]) == 2
    assert "--ward-param" in capsys.readouterr().err
