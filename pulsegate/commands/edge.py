"""``pulsegate edge run --config FILE``: the gateway daemon."""

from __future__ import annotations

import argparse

from pulsegate.cli import Commands, daemon_command


def register(cmds: Commands) -> None:
    daemon_command(cmds, "edge", "the gateway daemon",
                   "run the gateway daemon (systemd Type=notify): devices, alarms, nurse page, uplink", _run)


def _run(args: argparse.Namespace) -> int:
    from edge.config import EdgeConfig, load_edge_config
    from edge.daemon import EdgeDaemon
    from runtime import logs
    from runtime.daemon_run import run_daemon

    def log_setup(cfg: EdgeConfig) -> None:
        logs.setup(cfg.gateway.log_level, gateway=cfg.gateway.id, site=cfg.gateway.site)

    return run_daemon("edge", args.config, load_edge_config, log_setup, lambda cfg, base: EdgeDaemon(cfg, base).run)
