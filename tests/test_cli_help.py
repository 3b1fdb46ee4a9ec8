"""Every command and every argument says what it does in --help, and every command shows an example."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

from pulsegate.cli import build_parser


def commands(p: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                      argparse.ArgumentParser]]:
    yield path, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def test_every_command_and_argument_is_described_with_an_example() -> None:
    found = list(commands(build_parser()))
    assert len(found) > 30
    problems = []
    for path, p in found:
        name = " ".join(("pulsegate", *path))
        if not (p.description or "").strip():
            problems.append(f"{name}: no description")
        if "examples:" not in (p.epilog or "") or "pulsegate " not in (p.epilog or ""):
            problems.append(f"{name}: no example")
        for a in p._actions:
            if isinstance(a, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
                continue
            if not (a.help or "").strip() or a.help == argparse.SUPPRESS:
                problems.append(f"{name} {'/'.join(a.option_strings) or a.dest}: no help")
    assert problems == [], "\n".join(problems)


def test_help_of_replay_as_a_user_sees_it() -> None:
    out = subprocess.run([sys.executable, "-m", "pulsegate", "replay", "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "run the clinical pipeline over a recorded CSV" in out
    assert "timestamp,patient,parameter,value" in out
    assert "examples:\n  pulsegate replay tests/data/replay_golden.csv.gz --json" in out
    assert "--profile PROFILE" in out and "alarm profile for every patient" in out
