"""PulseGate: clinical edge gateway and cloud ingest.

Every command group is one module of pulsegate/commands/ (edge, cloud, replay, video, model, bench,
emulate, demo, check_config, user, cert). Those modules import heavy libraries (OpenCV, TensorFlow, LiteRT) only
inside the command handlers, so ``pulsegate --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runtime.version import __version__

Handler = Callable[[argparse.Namespace], int]

COMMAND_MODULES = tuple(
    f"pulsegate.commands.{name}"
    for name in ("check_config", "demo", "edge", "cloud", "replay", "video", "model", "bench", "emulate", "user",
                 "cert", "fhir")
)


@dataclass
class Commands:
    """Subparser groups the command modules add to. Set ``handler=`` defaults."""

    top: argparse._SubParsersAction[argparse.ArgumentParser]
    bench: argparse._SubParsersAction[argparse.ArgumentParser]
    model: argparse._SubParsersAction[argparse.ArgumentParser]
    emulate: argparse._SubParsersAction[argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulsegate", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pulsegate {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = top.add_parser("bench", help="benchmarks that print figures").add_subparsers(
        dest="bench", metavar="WHAT", required=True
    )
    model = top.add_parser("model", help="model registry: keys, signing, evaluation").add_subparsers(
        dest="model_cmd", metavar="ACTION", required=True
    )
    emulate = top.add_parser("emulate", help="run a device emulator").add_subparsers(
        dest="device", metavar="DEVICE", required=True
    )
    cmds = Commands(top=top, bench=bench, model=model, emulate=emulate)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(cmds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
