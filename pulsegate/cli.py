"""PulseGate: clinical edge gateway and cloud ingest.

Each area registers its own commands from a small ``cli.py`` of its own
(edge/cli.py, cloud/cli.py, firmware_bridge/cli.py, pulsegate/demo_cli.py).
Those modules import heavy libraries (OpenCV, TensorFlow, LiteRT) only inside
the command handlers, so ``pulsegate --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pulsegate import __version__

Handler = Callable[[argparse.Namespace], int]

COMMAND_MODULES = (
    "pulsegate.config_cli",  # check-config
    "pulsegate.demo_cli",  # demo
    "pulsegate.model_cli",  # model keygen/sign/verify
    "pulsegate.wire_cli",  # bench wire
    "edge.cli",  # edge run
    "edge.clinical_cli",  # replay, bench edge
    "edge.video.cli",  # bench video, model eval endoscopy-seg, video
    "cloud.cli",  # cloud run
    "cloud.reliability_cli",  # bench ingest, bench outage
    "cloud.training.vitals_cli",  # model train vitals-anomaly
    "cloud.training.endoscopy_cli",  # model train endoscopy-seg
    "firmware_bridge.cli",  # emulate, bench codecs
)


@dataclass
class Commands:
    """Subparser groups an area may add commands to. Set ``handler=`` defaults."""

    top: argparse._SubParsersAction[argparse.ArgumentParser]
    bench: argparse._SubParsersAction[argparse.ArgumentParser]
    model: argparse._SubParsersAction[argparse.ArgumentParser]
    emulate: argparse._SubParsersAction[argparse.ArgumentParser]

    def model_group(self, name: str, help: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        """``pulsegate model NAME MODEL ...`` (train, eval): shared by every area that adds a model to it.

        argparse refuses a second subparser of the same name, so the first area creates the group
        and the others add to it.
        """
        parser = self.model.choices.get(name)
        if parser is None:
            parser = self.model.add_parser(name, help=help)
            parser.add_subparsers(dest=f"{name}_what", metavar="MODEL", required=True)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action
        raise RuntimeError(f"model {name} has no sub-commands")


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
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # area not installed in this deployment (e.g. cloud on a gateway)
            raise
        mod.register(cmds)
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
