"""``pulsegate model train vitals-anomaly`` and ``pulsegate model eval vitals-anomaly``.

Evaluation runs the gateway's real clinical pipeline over held-out scenarios
through ``pulsegate replay`` in a subprocess (cloud/ does not import edge/):
the scenarios are written in the replay CSV format, the alarms come back as
JSON lines, and cloud/training/evaluation.py scores them against the
scenarios' known onsets and events.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pulsegate.cli import Commands

DEFAULT_KEY = Path("examples/keys/dev-signing.key")


def register(cmds: Commands) -> None:
    what = cmds.model_group("train", "train a model")
    p = what.add_parser("vitals-anomaly", help="train the vitals-anomaly model on synthetic scenarios")
    _train_args(p)
    p.set_defaults(handler=_train)
    evals = cmds.model_group("eval", "evaluate a model on held-out or your own data")
    e = evals.add_parser("vitals-anomaly", help="alarms of the real pipeline vs NEWS2 on held-out scenarios")
    e.add_argument("model_dir", type=Path, help="models/vitals-anomaly/<version>")
    e.add_argument("--scenarios", type=int, default=80, help="held-out scenarios (default 80)")
    e.add_argument("--seed", type=int, default=9001, help="held-out seed (training used others)")
    e.add_argument("--hours", type=float, default=12.0)
    e.add_argument("--workdir", type=Path, default=None, help="keep the CSV and alarms here")
    e.add_argument("--write", action="store_true",
                   help="put the figures into manifest.json (re-signed) and write MODEL_CARD.md")
    e.add_argument("--key", type=Path, default=DEFAULT_KEY, help="signing key for --write")
    e.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    e.set_defaults(handler=_eval)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("models/vitals-anomaly"), help="models/vitals-anomaly")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--train-scenarios", type=int, default=240)
    p.add_argument("--val-scenarios", type=int, default=60)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--hours", type=float, default=12.0)
    p.add_argument("--target-fa", type=float, default=0.5,
                   help="false alarms per bed-day on validation scenarios that sets the threshold")
    p.add_argument("--key", type=Path, default=DEFAULT_KEY, help="Ed25519 signing key (PEM)")


def _train(args: argparse.Namespace) -> int:
    from cloud.training.vitals_anomaly import train

    if not args.key.exists():
        print(f"signing key {args.key} not found", file=sys.stderr)
        return 2
    res = train(args.out, args.version, seed=args.seed, n_train=args.train_scenarios, n_val=args.val_scenarios,
                epochs=args.epochs, hours=args.hours, target_fa_per_day=args.target_fa, key_path=args.key)
    print(json.dumps({"model_dir": str(res.model_dir), **res.metrics}))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from cloud.training.evaluation import evaluate

    if not (args.model_dir / "model.tflite").exists():
        print(f"{args.model_dir}: no model.tflite", file=sys.stderr)
        return 2
    report = evaluate(args.model_dir, count=args.scenarios, seed=args.seed, hours=args.hours, workdir=args.workdir)
    if args.write:
        from cloud.training.model_card import write_model_card
        from cloud.training.vitals_anomaly import update_manifest_metrics

        update_manifest_metrics(args.model_dir, report.manifest_metrics(), args.key if args.key.exists() else None)
        write_model_card(args.model_dir, report.as_dict())
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(report.table())
    return 0
