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
from pathlib import Path

from runtime.version import __version__

Handler = Callable[[argparse.Namespace], int]

COMMAND_MODULES = tuple(
    f"pulsegate.commands.{name}"
    for name in ("check_config", "demo", "edge", "cloud", "replay", "video", "model", "bench", "emulate", "user",
                 "cert", "fhir", "learning")
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; an argument's default shown after its help unless the help names it (or
    there is none to show: a flag, an unset option)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        d = action.default
        if "default" in text or d is None or d is False or d == argparse.SUPPRESS or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def example(p: argparse.ArgumentParser, *lines: str) -> argparse.ArgumentParser:
    """Show ``lines`` (command lines, ``# comment`` allowed) under "examples:" in ``p``'s --help."""
    p.epilog = "examples:\n" + "\n".join(f"  {ln}" for ln in lines)
    return p


def daemon_command(cmds: Commands, kind: str, what: str, run_help: str, handler: Handler) -> None:
    """``pulsegate KIND run --config FILE`` (the two daemons), described, with examples."""
    path = f"/etc/pulsegate/{kind}.toml"
    g = example(cmds.top.add_parser(kind, help=what), f"pulsegate {kind} run --config {path}")
    run = g.add_subparsers(dest=f"{kind}_cmd", metavar="ACTION", required=True).add_parser("run", help=run_help)
    run.add_argument("--config", type=Path, required=True,
                     help=f"the {kind} daemon's TOML file (start from examples/{kind}.toml)")
    example(run, f"pulsegate {kind} run --config {path}",
            f"pulsegate check-config {path}   # first: exit 2 and key/line on a bad config")
    run.set_defaults(handler=handler)


def _describe(parser: argparse.ArgumentParser) -> None:
    """Each sub-command's --help starts with the one-line help its parent lists it with, and uses
    HelpFormatter; recursively."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if sub.description is None and helps.get(name):
                    sub.description = str(helps[name])
                _describe(sub)


@dataclass
class Commands:
    """Subparser groups the command modules add to. Set ``handler=`` defaults."""

    top: argparse._SubParsersAction[argparse.ArgumentParser]
    bench: argparse._SubParsersAction[argparse.ArgumentParser]
    model: argparse._SubParsersAction[argparse.ArgumentParser]
    emulate: argparse._SubParsersAction[argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulsegate", description=__doc__.splitlines()[0])
    example(parser, "pulsegate demo                      # everything on this machine; prints every address",
            "pulsegate check-config /etc/pulsegate/edge.toml",
            "pulsegate COMMAND --help            # what a command does, with examples")
    parser.add_argument("--version", action="version", version=f"pulsegate {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench_p = example(top.add_parser("bench", help="benchmarks that print figures"),
                      "pulsegate bench edge --beds 64 --json", "pulsegate bench codecs")
    bench = bench_p.add_subparsers(
        dest="bench", metavar="WHAT", required=True
    )
    model_p = example(top.add_parser("model", help="model registry: keys, signing, training, evaluation"),
                      "pulsegate model verify models/vitals-anomaly/1.0.0 --trusted-key examples/keys/dev-signing.pub")
    model = model_p.add_subparsers(
        dest="model_cmd", metavar="ACTION", required=True
    )
    emulate_p = example(top.add_parser("emulate", help="run a device emulator"),
                        "pulsegate emulate masimo --scenario desaturation")
    emulate = emulate_p.add_subparsers(
        dest="device", metavar="DEVICE", required=True
    )
    cmds = Commands(top=top, bench=bench, model=model, emulate=emulate)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(cmds)
    _describe(parser)
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
