"""``pulsegate bench wire``."""

from __future__ import annotations

import argparse
import json

from pulsegate.cli import Commands


def register(cmds: Commands) -> None:
    p = cmds.bench.add_parser("wire", help="size and speed of the wire encodings")
    p.add_argument("--beds", type=int, default=64)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from wire.bench import run

    print(json.dumps(run(args.beds), indent=None if args.json else 2))
    return 0
