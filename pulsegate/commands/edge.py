"""``pulsegate edge run --config FILE``: the gateway daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from pulsegate.cli import Commands


def register(cmds: Commands) -> None:
    p = cmds.top.add_parser("edge", help="the gateway daemon").add_subparsers(dest="edge_cmd", required=True)
    run = p.add_parser("run", help="run the gateway daemon (systemd Type=notify)")
    run.add_argument("--config", type=Path, required=True)
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from edge.config import EdgeConfig, load_edge_config
    from edge.daemon import EdgeDaemon
    from runtime import logs
    from runtime.daemon_run import run_daemon

    def log_setup(cfg: EdgeConfig) -> None:
        logs.setup(cfg.gateway.log_level, gateway=cfg.gateway.id, site=cfg.gateway.site)

    return run_daemon("edge", args.config, load_edge_config, log_setup, lambda cfg, base: EdgeDaemon(cfg, base).run)
