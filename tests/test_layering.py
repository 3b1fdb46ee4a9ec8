"""The import contract, checked statically (every import, including those inside functions and
``TYPE_CHECKING`` blocks, and ``python -m pkg.mod`` subprocess calls), and at run time (heavy
third-party libraries stay out of the daemons that must not need them).

Layers, each importing only those above it:

    wire -> runtime -> clinical -> firmware_bridge -> edge | cloud (never each other) -> pulsegate

bench/ (benchmarks, drivers, local services) may import everything but pulsegate; nothing in the
layers imports it. Nothing but pulsegate imports pulsegate. tests/ stand aside.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS: tuple[tuple[str, ...], ...] = (("wire",), ("runtime",), ("clinical",), ("firmware_bridge",),
                                       ("edge", "cloud"), ("pulsegate",))
RANK = {pkg: i for i, group in enumerate(LAYERS) for pkg in group}
OURS = {*RANK, "bench"}
# the pure clinical core: no event loop, no network, no processes, no databases
CLINICAL_FORBIDDEN = {"asyncio", "socket", "subprocess", "sqlite3", "aiohttp", "aiomqtt", "paho", "serial",
                      "serial_asyncio_fast", "threading", "multiprocessing", "http", "urllib"}
HARNESS_WORDS = ("bench", "driver", "localservices", "fixture")


def imported_modules(source: str, module: str, is_pkg_init: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source`` wherever it stands, relative ones
    resolved against ``module``, plus the X of every ``"-m", "X"`` pair in a list or call."""
    tree = ast.parse(source)
    pkg = module.split(".")
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + (1 if is_pkg_init else 0)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            out.append((node.lineno, name))
        elif isinstance(node, ast.List | ast.Tuple | ast.Call):
            items = node.elts if isinstance(node, ast.List | ast.Tuple) else node.args
            for a, b in itertools.pairwise(items):
                if (isinstance(a, ast.Constant) and a.value == "-m" and isinstance(b, ast.Constant)
                        and isinstance(b.value, str)):
                    out.append((b.lineno, b.value))
    return out


def violations(module: str, source: str, is_pkg_init: bool = False) -> list[str]:
    """What breaks the contract in one module's source."""
    top = module.split(".")[0]
    bad = []
    for line, name in imported_modules(source, module, is_pkg_init):
        dep = name.split(".")[0]
        where = f"{module}:{line} imports {name}"
        if top == "clinical" and dep in CLINICAL_FORBIDDEN:
            bad.append(f"{where} (the clinical core does no I/O)")
        if dep not in OURS or dep == top:
            continue
        if dep == "pulsegate":
            bad.append(f"{where} (nothing imports the top layer)")
        elif top in ("bench", "pulsegate"):
            continue
        elif dep == "bench":
            bad.append(f"{where} (benchmarks and harnesses stay out of the shipped layers)")
        elif RANK[dep] >= RANK[top]:
            bad.append(f"{where} ({dep} is not above {top})")
    return bad


def our_modules() -> list[tuple[str, Path]]:
    mods = []
    for pkg in sorted(OURS):
        for p in sorted((REPO / pkg).rglob("*.py")):
            parts = list(p.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods.append((".".join(parts), p))
    return mods


def test_contract_holds_for_every_module() -> None:
    mods = our_modules()
    assert len(mods) > 100 and {m.split(".")[0] for m, _ in mods} == OURS
    bad = [v for m, p in mods for v in violations(m, p.read_text(), p.name == "__init__.py")]
    assert not bad, "\n".join(bad)


def test_no_benchmark_or_harness_module_in_the_shipped_layers() -> None:
    bad = [m for m, _ in our_modules()
           if m.split(".")[0] in RANK and m.split(".")[0] != "pulsegate"
           and any(w in m.split(".")[-1] for w in HARNESS_WORDS)]
    assert not bad, bad


@pytest.mark.parametrize(("module", "source", "needle"), [
    ("cloud.training.x", "def f():\n    from edge.litert import ModelRunner\n", "imports edge.litert"),
    ("cloud.x", "import subprocess\nsubprocess.run([sys.executable, '-m', 'edge.outbox_driver'])\n",
     "imports edge.outbox_driver"),
    ("edge.x", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import cloud.api\n", "imports cloud.api"),
    ("clinical.x", "async def f():\n    import asyncio\n", "no I/O"),
    ("runtime.x", "from clinical import stage\n", "clinical is not above runtime"),
    ("edge.x", "from pulsegate.cli import Commands\n", "top layer"),
    ("cloud.x", "from bench.localservices import Mosquitto\n", "stay out"),
    ("clinical.endoscopy.x", "from ..stage import ClinicalStage\nfrom ...edge import daemon\n", "imports edge"),
])
def test_the_check_sees_every_kind_of_crossing(module: str, source: str, needle: str) -> None:
    assert any(needle in v for v in violations(module, source)), violations(module, source)


def test_the_check_allows_what_the_layers_allow() -> None:
    ok = ("from wire import codec\nfrom runtime.logs import get_logger\nfrom clinical.stage import ClinicalStage\n"
          "def f():\n    from firmware_bridge.sources import make_source\n")
    assert violations("edge.daemon", ok) == []
    assert violations("bench.x", "import edge.outbox\nimport cloud.ingest\n") == []
    assert violations("pulsegate.commands.x", "import bench.codecs\nimport edge.daemon\nimport cloud.daemon\n") == []


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
        (["edge.daemon", "edge.video.service", "clinical.stage", "clinical.replay", "firmware_bridge.sources"],
         ["cloud", "tensorflow", "keras", "pulsegate", "bench"]),
        (["cloud.daemon", "cloud.api", "cloud.training.evaluation"],
         ["edge", "firmware_bridge", "cv2", "pulsegate", "bench"]),
        (["wire.codec", "wire.messages", "wire.model_manifest", "wire.model_offer"],
         ["runtime", "clinical", "edge", "cloud", "pulsegate", "firmware_bridge", "bench"]),
    ],
)
def test_import_boundaries_at_run_time(modules: list[str], blocked: list[str]) -> None:
    code = BLOCKER.format(blocked=set(blocked), modules=modules)
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
