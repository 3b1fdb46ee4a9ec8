"""``pulsegate edge run --config FILE``: the gateway daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from pulsegate.cli import Commands, example


def register(cmds: Commands) -> None:
    g = example(cmds.top.add_parser("edge", help="the gateway daemon"),
                "pulsegate edge run --config /etc/pulsegate/edge.toml")
    p = g.add_subparsers(dest="edge_cmd", metavar="ACTION", required=True)
    run = p.add_parser("run", help="run the gateway daemon (systemd Type=notify): devices, alarms, nurse page, uplink")
    run.add_argument("--config", type=Path, required=True,
                     help="the gateway's TOML file (start from examples/edge.toml)")
    example(run, "pulsegate edge run --config /etc/pulsegate/edge.toml",
            "pulsegate check-config /etc/pulsegate/edge.toml   # first: exit 2 and key/line on a bad config")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from edge.config import EdgeConfig, load_edge_config
    from edge.daemon import EdgeDaemon
    from runtime import logs
    from runtime.daemon_run import run_daemon

    def log_setup(cfg: EdgeConfig) -> None:
        logs.setup(cfg.gateway.log_level, gateway=cfg.gateway.id, site=cfg.gateway.site)

    return run_daemon("edge", args.config, load_edge_config, log_setup, lambda cfg, base: EdgeDaemon(cfg, base).run)
