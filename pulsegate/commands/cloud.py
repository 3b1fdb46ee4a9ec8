"""``pulsegate cloud run --config FILE``: the cloud ingest + API daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from pulsegate.cli import Commands, example


def register(cmds: Commands) -> None:
    g = example(cmds.top.add_parser("cloud", help="the cloud daemon"),
                "pulsegate cloud run --config /etc/pulsegate/cloud.toml")
    p = g.add_subparsers(dest="cloud_cmd", metavar="ACTION", required=True)
    run = p.add_parser("run", help="run the cloud ingest + API daemon (systemd Type=notify)")
    run.add_argument("--config", type=Path, required=True,
                     help="the cloud's TOML file (start from examples/cloud.toml)")
    example(run, "pulsegate cloud run --config /etc/pulsegate/cloud.toml")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from cloud.config import CloudConfig, load_cloud_config
    from cloud.daemon import CloudDaemon
    from runtime import logs
    from runtime.daemon_run import run_daemon

    def log_setup(cfg: CloudConfig) -> None:
        logs.setup(cfg.cloud.log_level, cloud=cfg.cloud.id)

    return run_daemon("cloud", args.config, load_cloud_config, log_setup, lambda cfg, base: CloudDaemon(cfg, base).run)
