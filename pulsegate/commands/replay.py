"""``pulsegate replay FILE.csv --json``: the clinical core over a recorded CSV, one alarm per line."""

from __future__ import annotations

import argparse
import json
import os
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
    r.add_argument("--profile", help="alarm profile for every patient (default: [clinical] default_profile; "
                   "'bedside' = single thresholds as on the monitor)")
    r.add_argument("--jobs", type=int, default=0,
                   help="processes, each replaying whole patients (default 0: one per core, at most 4, for "
                   "files over 20 MB); the output is the same for any number")
    r.add_argument("--reorder-s", type=float, default=10.0,
                   help="rows may be this many seconds out of order per patient (default %(default)s)")
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
        base = ClinicalConfig.model_validate({k: v for k, v in data.items() if k != "default_profile"})
        if f"{profile}-copd" in base.all_profiles():  # e.g. bedside: its scale-2 sibling too
            data["scale2_profile"] = f"{profile}-copd"
    return ClinicalConfig.model_validate(data)


class ModelLoadError(Exception):
    """The config or the model cannot be loaded; the message says which and why."""


def clinical_setup(args: argparse.Namespace, profile: str | None) -> tuple[Any, Any]:
    """(ClinicalConfig of ``--config`` with ``profile``, anomaly scorer or None); ModelLoadError if either fails."""
    from pydantic import ValidationError

    try:
        cfg = load_clinical_config(args.config, profile)
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ModelLoadError(f"config: {exc}") from None
    return cfg, load_scorer(args, cfg)


def load_scorer(args: argparse.Namespace, cfg: Any) -> Any:
    """The vitals-anomaly model of ``--model`` / the config / the newest under models/, or None (--no-model)."""
    from wire.model_manifest import newest_model_dir

    if args.no_model:
        return None
    model_dir = args.model or cfg.anomaly.model_dir or newest_model_dir(Path("models"), "vitals-anomaly")
    if model_dir is None:
        return None
    from clinical.anomaly import VitalsAnomalyModel

    try:
        return VitalsAnomalyModel(Path(model_dir), cfg.anomaly.num_threads, cfg.anomaly.trusted_keys)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"model: {exc}") from None


def auto_jobs(path: Path) -> int:
    """Processes for a replay: one per core (at most 4) for files over 20 MB, else one."""
    try:
        big = path.stat().st_size > 20_000_000
    except OSError:
        return 1
    return min(4, os.cpu_count() or 1) if big else 1


def _shard(job: tuple[Path, Any, str | None, int, int, bool, float]) -> tuple[list[dict[str, Any]], Any]:
    """One process of a parallel replay: the patients of shard k of n (clinical.replay.shard_of)."""
    from clinical.replay import replay

    path, cfg, model_dir, k, n, events, reorder_s = job
    scorer = None
    if model_dir is not None:
        from clinical.anomaly import VitalsAnomalyModel

        scorer = VitalsAnomalyModel(Path(model_dir), cfg.anomaly.num_threads, cfg.anomaly.trusted_keys)
    got: list[dict[str, Any]] = []
    stats = replay(path, got.append, cfg, scorer, events=events, reorder_s=reorder_s, shard=(k, n))
    return got, stats


def replay_parallel(path: Path, emit: Any, cfg: Any, model_dir: str | None, jobs: int, events: bool,
                    reorder_s: float) -> Any:
    """Replay in ``jobs`` processes, each owning whole patients (every patient runs on its own clock
    anyway), then merge: the output is the same as one process gives, in the same order."""
    import heapq
    import multiprocessing

    from clinical.replay import merge_stats

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs) as pool:
        parts = pool.map(_shard, [(path, cfg, model_dir, k, jobs, events, reorder_s) for k in range(jobs)])
    for rec in heapq.merge(*(p[0] for p in parts), key=lambda r: (r["epoch"], r["patient"])):
        emit(rec)
    return merge_stats([p[1] for p in parts])


def _replay(args: argparse.Namespace) -> int:
    from clinical.replay import ReplayError, replay

    try:
        cfg, scorer = clinical_setup(args, args.profile)
    except ModelLoadError as exc:
        print(str(exc), file=sys.stderr)
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
    jobs = args.jobs or auto_jobs(args.file)
    try:
        if jobs <= 1:
            stats = replay(args.file, emit, cfg, scorer, events=args.events, reorder_s=args.reorder_s)
        else:
            model_dir = None if scorer is None else str(scorer.model_dir)
            stats = replay_parallel(args.file, emit, cfg, model_dir, jobs, args.events, args.reorder_s)
    except ReplayError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    summary = stats.as_dict()
    summary["model"] = None if scorer is None else scorer.version
    if stats.order.late:
        print(f"warning: {stats.order.late} row(s) more than the reorder window behind their patient's newest row "
              f"were not applied (lines {stats.order.late_lines[:5]}...)", file=sys.stderr)
    if stats.ignored_columns:
        print(f"warning: columns that name no parameter were ignored: {', '.join(stats.ignored_columns)}",
              file=sys.stderr)
    print(json.dumps({"replay": summary}), file=sys.stderr)
    return 0
