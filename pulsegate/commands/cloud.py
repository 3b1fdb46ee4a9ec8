"""``pulsegate cloud run --config FILE``: the cloud ingest + API daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from pulsegate.cli import Commands


def register(cmds: Commands) -> None:
    p = cmds.top.add_parser("cloud", help="the cloud daemon").add_subparsers(dest="cloud_cmd", required=True)
    run = p.add_parser("run", help="run the cloud ingest + API daemon (systemd Type=notify)")
    run.add_argument("--config", type=Path, required=True)
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from cloud.config import CloudConfig, load_cloud_config
    from cloud.daemon import CloudDaemon
    from runtime import logs
    from runtime.daemon_run import run_daemon

    def log_setup(cfg: CloudConfig) -> None:
        logs.setup(cfg.cloud.log_level, cloud=cfg.cloud.id)

    return run_daemon("cloud", args.config, load_cloud_config, log_setup, lambda cfg, base: CloudDaemon(cfg, base).run)
