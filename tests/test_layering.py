"""Layering: edge/ never imports cloud/ (or TensorFlow); cloud/ never imports edge/ (or OpenCV)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError('forbidden import: ' + name)
sys.meta_path.insert(0, Block())
for m in {modules!r}:
    __import__(m)
print('ok')
"""


@pytest.mark.parametrize(
    ("modules", "blocked"),
    [
        (["edge.daemon", "pulsegate.commands.edge", "pulsegate.commands.replay", "pulsegate.commands.video", "pulsegate.commands.emulate", "clinical.replay"],
         ["cloud", "tensorflow", "keras"]),
        (["cloud.daemon", "pulsegate.commands.cloud", "pulsegate.commands.bench_reliability", "cloud.api"], ["edge", "firmware_bridge", "cv2"]),
        (["wire.codec", "wire.messages", "wire.model_manifest", "wire.model_offer"], ["edge", "cloud", "pulsegate"]),
    ],
)
def test_import_boundaries(modules: list[str], blocked: list[str]) -> None:
    code = BLOCKER.format(blocked=set(blocked), modules=modules)
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
