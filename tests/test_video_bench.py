"""``pulsegate bench video`` runs the real pipeline and prints its figures (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from edge.video.config import REPO_ROOT
from pulsegate.cli import main

CLIP = REPO_ROOT / "examples" / "video" / "kvasir-demo.mp4"


def test_bench_video_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "video", "--source", str(CLIP), "--frames", "20", "--pace", "free", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("fps", "latency_ms_p50", "latency_ms_p95", "dropped_frames", "cpu_percent"):
        assert key in out, key
    assert out["frames"] == 20 and out["fps"] > 0
    assert 0 < out["latency_ms_p50"] <= out["latency_ms_p95"] <= out["latency_ms_max"]
    assert out["source_size"] == [1280, 720] and out["model_input"][0] in (256, 320)
    # free pace: the source outruns the model, and stale frames are dropped, not queued
    assert out["captured_frames"] >= out["frames"] and out["dropped_frames"] >= 0
