"""``pulsegate model retrain ...``: the learning loop's commands (docs/learning-loop.md).

    pulsegate model retrain vitals-anomaly --influx URL --database DB --since 30d --out DIR --json

Handlers import the cloud's training lazily (TensorFlow is only in the ``train`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pulsegate.cli import Commands, example

DEFAULT_ACTIVE = Path("models/vitals-anomaly/1.0.0")


def register(cmds: Commands) -> None:
    rt = example(cmds.model.add_parser("retrain", help="retrain a model on what the fleet recorded (InfluxDB)"),
                 "pulsegate model retrain vitals-anomaly --influx http://127.0.0.1:8086 --database pulsegate "
                 "--since 30d --out models/vitals-anomaly --json").add_subparsers(
        dest="retrain_what", metavar="MODEL", required=True)
    p = rt.add_parser("vitals-anomaly", help="fleet summaries + nurse verdicts + clinical events -> a gated candidate")
    p.add_argument("--influx", required=True, help="InfluxDB URL (1.x API or a v1-compatible endpoint)")
    p.add_argument("--database", required=True, help="the ingest's database")
    p.add_argument("--username", help="InfluxDB user")
    p.add_argument("--password-file", type=Path, help="file holding the InfluxDB password")
    p.add_argument("--since", default="30d", help="how far back to read: 30d, 12h, 90m")
    p.add_argument("--out", type=Path, required=True, help="where the candidate goes: OUT/<version>/")
    p.add_argument("--active", type=Path, default=DEFAULT_ACTIVE,
                   help="the model the fleet runs now, to compare against on the same held-out patients")
    p.add_argument("--key", type=Path, help="Ed25519 signing key: a candidate that passes the gate is signed")
    p.add_argument("--version", help="the candidate's version (default: the active's minor + 1)")
    p.add_argument("--seed", type=int, default=1, help="training seed")
    p.add_argument("--synthetic", type=int, default=40,
                   help="synthetic scenarios added to the fleet's training set (augmentation; 0 = fleet only)")
    p.add_argument("--epochs", type=int, default=6, help="training epochs")
    p.add_argument("--sens-margin", type=float, default=0.05,
                   help="gate: how much lower the candidate's sensitivity may be (at the 95 %% lower bound)")
    p.add_argument("--fa-margin", type=float, default=0.5,
                   help="gate: how many more false alarms per patient-day it may raise (95 %% upper bound)")
    p.add_argument("--json", action="store_true", help="print one JSON object (the report)")
    p.set_defaults(handler=_retrain)
    example(p, "pulsegate model retrain vitals-anomaly --influx http://127.0.0.1:8086 --database pulsegate "
               "--since 30d --out /var/lib/pulsegate/candidates --key /etc/pulsegate/keys/models.key --json",
            "# exit 0: the gate passed; 1: refused (nothing signed); 2: too little data (no model) or bad input")


def _retrain(args: argparse.Namespace) -> int:
    from cloud.influx import InfluxError, InfluxWriter
    from cloud.training.fleet_data import load_fleet, since_seconds
    from cloud.training.gate import GateConfig
    from cloud.training.retrain import RetrainOptions, TooLittleData, retrain

    try:
        since = since_seconds(args.since)
        password = args.password_file.read_text().strip() if args.password_file else None
    except (ValueError, OSError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if not (args.active / "manifest.json").exists():
        print(f"--active {args.active}: no manifest.json there", file=sys.stderr)
        return 2
    if args.key is not None and not args.key.exists():
        print(f"--key {args.key} not found", file=sys.stderr)
        return 2

    async def load() -> object:
        w = InfluxWriter(args.influx, args.database, args.username, password)
        try:
            return await load_fleet(w, since)
        finally:
            await w.close()

    try:
        fleet = asyncio.run(load())
    except InfluxError as exc:
        print(f"cannot read InfluxDB at {args.influx}: {exc}", file=sys.stderr)
        return 2
    opts = RetrainOptions(out_dir=args.out, active_dir=args.active, key_path=args.key, version=args.version,
                          seed=args.seed, synthetic=args.synthetic, epochs=args.epochs,
                          gate=GateConfig(sens_margin=args.sens_margin, fa_margin=args.fa_margin))
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    try:
        report = retrain(fleet, opts, log=log)  # type: ignore[arg-type]
    except TooLittleData as exc:
        if args.json:
            print(json.dumps({"error": "too_little_data", "message": str(exc)}))
        print(str(exc), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
    else:
        g = report["gate"]
        print(f"candidate {report['candidate']['version']} vs active {report['active']['version']} on "
              f"{report['heldout_patients']} held-out patients: gate {'PASSED' if g['pass'] else 'REFUSED'}")
        for r in g["reasons"]:
            print(f"  {r}")
        print(f"  {'signed' if report['signed'] else 'not signed'}: {report['model_dir']}")
    return 0 if report["gate"]["pass"] else 1
