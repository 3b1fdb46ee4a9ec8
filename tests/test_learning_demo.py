"""`pulsegate demo --learning-loop --duration S --json` (issue 12, slice 6): real processes and services
(mosquitto, influxd, the cloud daemon's ingest), emulated gateways' history and nurse verdicts, a real retrain
from InfluxDB with its gate, a staged rollout on emulated gateways running the gateway's own model slots and
shadow scorer on LiteRT; one JSON object with `retrain` and `rollout`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]


def test_learning_loop_demo_prints_retrain_and_rollout(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "pulsegate", "demo", "--learning-loop", "--duration", "60", "--json",
                          "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=900, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    h, r, ro = out["history"], out["retrain"], out["rollout"]
    assert h["verdicts"] > 0 and h["events"] > 0 and h["summary_points_in_influxdb"] > 10_000
    for k in ("train_patients", "heldout_patients", "labels_from_feedback", "labels_from_events", "candidate",
              "active", "gate"):
        assert k in r, k
    assert r["labels_from_feedback"] > 0 and r["labels_from_events"] > 0
    assert isinstance(r["gate"]["pass"], bool) and r["gate"]["reasons"]
    assert r["signed"] == r["gate"]["pass"]  # a refused candidate is signed by nobody
    from pulsegate.demo_learning import ACTIVE

    major, minor, _ = (int(x) for x in ACTIVE.name.split("."))
    assert r["active"]["version"] == ACTIVE.name  # the newest shipped model, as the gateways run it
    assert r["candidate"]["version"] == f"{major}.{minor + 1}.0" and major >= 2
    assert r["synthetic"]["pre_training"].startswith("the active model's own")  # a warm start from it
    assert r["gate"]["paired"] and r["candidate"]["episodes"] == r["active"]["episodes"] > 0
    if not r["gate"]["pass"]:  # a refused candidate is signed by nobody and nothing is rolled out
        assert ro["outcome"] == "not_rolled_out" and ro["decisions"] == [] and "nothing" in ro["what"]
        return
    assert ro["version"] == r["candidate"]["version"] and ro["outcome"] in ("promoted", "rolled_back")
    assert ro["decisions"][0]["action"] == "offer" and all(d["reason"] for d in ro["decisions"])
    final = {g["active"] for g in ro["gateways"].values()}
    assert final == ({ro["version"]} if ro["outcome"] == "promoted" else {r["active"]["version"]})
    assert (tmp_path / "rollout-audit.jsonl").exists()
