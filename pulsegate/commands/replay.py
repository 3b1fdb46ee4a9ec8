"""``pulsegate replay FILE.csv --json``: the clinical core over a recorded CSV, one alarm per line."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from pulsegate.cli import Commands, example


def register(cmds: Commands) -> None:
    r = cmds.top.add_parser("replay", help="run the clinical pipeline over a recorded CSV and print its alarms")
    r.add_argument("file", type=Path, help="CSV (or .csv.gz) with columns timestamp,patient,parameter,value")
    r.add_argument("--json", action="store_true", help="one JSON object per alarm raised (default: a table)")
    r.add_argument("--config", type=Path, help="TOML file whose [clinical] table sets profiles and delays")
    r.add_argument("--model", type=Path, help="vitals-anomaly model dir (default: newest under models/)")
    r.add_argument("--no-model", action="store_true", help="NEWS2 and thresholds only")
    r.add_argument("--events", action="store_true", help="also print escalations, clears and other changes")
    r.add_argument("--profile", help="alarm profile for every patient (default: [clinical] default_profile)")
    r.set_defaults(handler=_replay)
    example(r, "pulsegate replay tests/data/replay_golden.csv.gz --json",
            "pulsegate replay ward.csv --config /etc/pulsegate/edge.toml --events   # your profiles and delays",
            "pulsegate replay ward.csv --no-model --profile copd")


def load_clinical_config(path: Path | None, profile: str | None = None) -> Any:
    from clinical.alarms.profiles import ClinicalConfig

    data: dict[str, Any] = {}
    if path is not None:
        with path.open("rb") as f:
            data = dict(tomllib.load(f).get("clinical", {}))
    if profile:
        data["default_profile"] = profile
    return ClinicalConfig.model_validate(data)


def _replay(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from clinical.replay import ReplayError, replay
    from wire.model_manifest import newest_model_dir

    try:
        cfg = load_clinical_config(args.config, args.profile)
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        print(f"config: {exc}", file=sys.stderr)
        return 2
    scorer = None
    if not args.no_model:
        model_dir = args.model or cfg.anomaly.model_dir or newest_model_dir(Path("models"), "vitals-anomaly")
        if model_dir is not None:
            from clinical.anomaly import VitalsAnomalyModel

            try:
                scorer = VitalsAnomalyModel(Path(model_dir), cfg.anomaly.num_threads, cfg.anomaly.trusted_keys)
            except (OSError, ValueError, RuntimeError) as exc:
                print(f"model: {exc}", file=sys.stderr)
                return 2
    out = sys.stdout
    if args.json:
        def emit(rec: dict[str, Any]) -> None:
            out.write(json.dumps(rec) + "\n")
    else:
        print(f"{'time':24} {'patient':16} {'priority':8} {'kind':13} {'source':9} {'condition':24} score")

        def emit(rec: dict[str, Any]) -> None:
            out.write(f"{rec['time']:24} {rec['patient'][:16]:16} {rec['priority']:8} {rec['kind']:13} "
                      f"{rec['source']:9} {rec['condition'][:24]:24} {rec['score']}\n")
    try:
        stats = replay(args.file, emit, cfg, scorer, events=args.events)
    except ReplayError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    summary = stats.as_dict()
    summary["model"] = None if scorer is None else scorer.version  # type: ignore[attr-defined]
    print(json.dumps({"replay": summary}), file=sys.stderr)
    return 0
