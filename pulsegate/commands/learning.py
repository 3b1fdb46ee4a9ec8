"""``pulsegate model retrain ...``: the learning loop's commands (docs/learning-loop.md).

    pulsegate model retrain vitals-anomaly --influx URL --database DB --since 30d --out DIR --json
    pulsegate model rollout DIR --site S --gateway G ... [--canary G | --canary-percent P] --key KEY --json

Handlers import the cloud's training lazily (TensorFlow is only in the ``train`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pulsegate.cli import Commands, example

DEFAULT_ACTIVE = Path(__file__).resolve().parents[2] / "models" / "vitals-anomaly" / "2.0.0"


def register(cmds: Commands) -> None:
    register_retrain(cmds)
    register_rollout(cmds)


def register_retrain(cmds: Commands) -> None:
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
    p.add_argument("--cold-start", action="store_true",
                   help="train from scratch instead of fine-tuning the active model's weights (warm start)")
    p.add_argument("--sens-margin", type=float, default=0.05,
                   help="gate: how much lower the candidate's sensitivity may be (at the 95 %% lower bound)")
    p.add_argument("--fa-margin", type=float, default=0.5,
                   help="gate: how many more false alarms per patient-day it may raise (95 %% upper bound)")
    p.add_argument("--json", action="store_true", help="print one JSON object (the report)")
    p.set_defaults(handler=_retrain)
    example(p, "pulsegate model retrain vitals-anomaly --influx http://127.0.0.1:8086 --database pulsegate "
               "--since 30d --out /var/lib/pulsegate/candidates --key /etc/pulsegate/keys/models.key --json",
            "# exit 0: the gate passed; 1: refused (nothing signed); 2: too little data (no model) or bad input")


def register_rollout(cmds: Commands) -> None:
    p = cmds.model.add_parser("rollout", help="staged rollout of a signed candidate: canary, shadow, fleet, or "
                                             "roll back everywhere")
    p.add_argument("model_dir", type=Path, help="a signed models/vitals-anomaly/<version> folder")
    p.add_argument("--site", required=True, help="site of the gateways (topic level)")
    p.add_argument("--gateway", action="append", required=True, help="a gateway of the fleet (repeat)")
    p.add_argument("--canary", action="append", help="a canary gateway by name (repeat); default: by percentage")
    p.add_argument("--canary-percent", type=float, default=10.0,
                   help="the canary: gateways whose stable hash of the id falls below this percentage")
    p.add_argument("--stages", default="50",
                   help="later stages' percentages before the whole fleet, e.g. 25,50 ('' for none)")
    p.add_argument("--dwell", type=float, default=300.0, help="seconds each stage shadows before the next")
    p.add_argument("--report-timeout", type=float, default=120.0,
                   help="seconds without a shadow report from a started gateway before everything is rolled back")
    p.add_argument("--min-bed-windows", type=int, default=10, help="comparisons each gateway needs per stage")
    p.add_argument("--key", type=Path, required=True, help="Ed25519 key that signs the promote/rollback commands")
    p.add_argument("--host", default="127.0.0.1", help="the cloud broker")
    p.add_argument("--port", type=int, default=1883, help="the cloud broker's port")
    p.add_argument("--username", help="broker user name")
    p.add_argument("--password-file", type=Path, help="file holding the broker password")
    p.add_argument("--tls-ca", help="CA file: connect with TLS and verify the broker against it")
    p.add_argument("--audit", type=Path, help="append every decision with its reason to this JSON-lines file")
    p.add_argument("--influx", help="InfluxDB URL: decisions also go to measurement rollout_decisions")
    p.add_argument("--database", default="pulsegate", help="InfluxDB database for --influx")
    p.add_argument("--json", action="store_true", help="print the outcome, stages and decisions as one JSON object")
    p.set_defaults(handler=_rollout)
    example(p, "pulsegate model rollout candidates/1.1.0 --site stmarys --gateway ward7-gw1 --gateway ward8-gw1 "
               "--gateway ward9-gw1 --canary ward7-gw1 --dwell 1800 --key models.key --audit rollouts.jsonl --json",
            "# exit 0: promoted on the whole fleet; 1: rolled back everywhere; 2: bad input")


def _rollout(args: argparse.Namespace) -> int:
    from cloud.influx import InfluxWriter
    from cloud.rollout import Broker, Rollout, RolloutRun
    from cloud.rollout_plan import Criteria, plan_stages
    from wire.model_manifest import ManifestError, load_private_key, verify_model_dir

    try:
        key = load_private_key(args.key)
        verify_model_dir(args.model_dir, [key.public_key()])  # signed (by this key): never offer an unsigned model
        later = [float(x) for x in args.stages.split(",") if x.strip()]
        stages = plan_stages(args.gateway, args.canary, later if args.canary else [args.canary_percent, *later])
        password = args.password_file.read_text().strip() if args.password_file else None
    except (ManifestError, ValueError, OSError) as exc:
        print(f"rollout refused: {exc}", file=sys.stderr)
        return 2
    crit = Criteria(dwell_s=args.dwell, report_timeout_s=args.report_timeout, min_bed_windows=args.min_bed_windows)

    async def go() -> dict[str, object]:
        influx = InfluxWriter(args.influx, args.database) if args.influx else None
        try:
            run = RolloutRun(Rollout(args.model_dir, args.site, stages, key, crit,
                                     Broker(args.host, args.port, args.username, password, args.tls_ca),
                                     audit_path=args.audit, influx_write=influx.write if influx else None))
            return await run.run()
        finally:
            if influx is not None:
                await influx.close()

    result = asyncio.run(go())
    if args.json:
        print(json.dumps(result))
    else:
        for d in result["decisions"]:  # type: ignore[attr-defined]
            print(f"{d['action']:>8} stage {d['stage']}: {', '.join(d['gateways'])} — {d['reason']}")
        print(f"outcome: {result['outcome']}")
    return 0 if result["outcome"] == "promoted" else 1


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
                          seed=args.seed, synthetic=args.synthetic, epochs=args.epochs, cold_start=args.cold_start,
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
