"""``pulsegate demo``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pulsegate.cli import Commands, example


def register(cmds: Commands) -> None:
    p = cmds.top.add_parser("demo", help="run a gateway, the cloud and emulated monitors on this machine")
    p.add_argument("--duration", type=float, default=None, help="stop by itself after S seconds")
    p.add_argument("--json", action="store_true", help="print one JSON object with the figures at the end")
    p.add_argument("--state-dir", type=Path, default=None, help="keep data and configs here (default: a temp dir)")
    p.add_argument("--http-port", type=int, default=8080, help="nurse page / metrics port (0: any free port)")
    p.add_argument("--no-video", action="store_true", help="leave out the endoscopy video room")
    p.add_argument("--ambulance", action="store_true",
                   help="add an ambulance on an emulated route (GPS, tunnel, pre-arrival notice on the arrivals board)")
    p.add_argument("--learning-loop", action="store_true",
                   help="the learning loop instead: emulated gateways' history and nurse verdicts into InfluxDB, "
                        "retrain, gate, staged rollout with shadow, promote or roll back (docs/learning-loop.md)")
    p.add_argument("--fhir-out", type=Path, default=None,
                   help="at the end, write the FHIR R4 export (transaction Bundle) of the demo's data to this file")
    example(p, "pulsegate demo                         # until Ctrl-C or SIGTERM; prints every address",
            "pulsegate demo --duration 20 --json   # a scripted run: one JSON object with the figures",
            "pulsegate demo --http-port 0 --state-dir /tmp/pg   # any free port; keep configs and logs",
            "pulsegate demo --duration 60 --fhir-out demo-fhir.json   # and its FHIR R4 export at the end",
            "pulsegate demo --ambulance               # plus an ambulance on a route, its notice on the arrivals board",
            "pulsegate demo --learning-loop --duration 240 --json   # retrain, gate, rollout: {retrain, rollout}")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.learning_loop:
        return _learning_loop(args)
    from pulsegate.demo import Stopped, run
    from runtime.ports import PortInUseError

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    try:
        result = run(args.duration, args.state_dir, args.http_port, not args.no_video, say, args.fhir_out,
                     args.ambulance)
    except PortInUseError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except (Stopped, KeyboardInterrupt) as exc:
        print(f"demo stopped ({'SIGTERM' if isinstance(exc, Stopped) else 'interrupted'}): everything it started "
              "is stopped", file=sys.stderr)
        return 0
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        say(json.dumps(result.as_dict(), indent=2))
    return 0


def _learning_loop(args: argparse.Namespace) -> int:
    from pulsegate.demo_learning import run_learning_loop

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    try:
        result = run_learning_loop(args.duration, args.state_dir, say)
    except KeyboardInterrupt:
        print("demo interrupted: everything it started is stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0
