"""``pulsegate cloud run --config FILE``: the cloud ingest + API daemon."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from pulsegate.cli import Commands


def register(cmds: Commands) -> None:
    p = cmds.top.add_parser("cloud", help="the cloud daemon").add_subparsers(dest="cloud_cmd", required=True)
    run = p.add_parser("run", help="run the cloud ingest + API daemon (systemd Type=notify)")
    run.add_argument("--config", type=Path, required=True)
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from cloud.config import load_cloud_config
    from cloud.daemon import CloudDaemon
    from pulsegate import logs
    from pulsegate.configbase import SecretError
    from pulsegate.configload import ConfigError

    try:
        cfg = load_cloud_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid cloud config", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    logs.setup(cfg.cloud.log_level, cloud=cfg.cloud.id)
    try:
        daemon = CloudDaemon(cfg, args.config.resolve().parent)
    except (SecretError, ValueError, OSError) as exc:
        logs.get_logger("cloud").error("startup_failed", error=str(exc))
        return 2
    return asyncio.run(daemon.run())
