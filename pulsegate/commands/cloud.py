"""``pulsegate cloud run --config FILE``: the cloud ingest + API daemon."""

from __future__ import annotations

import argparse

from pulsegate.cli import Commands, daemon_command


def register(cmds: Commands) -> None:
    daemon_command(cmds, "cloud", "the cloud daemon", "run the cloud ingest + API daemon (systemd Type=notify)", _run)


def _run(args: argparse.Namespace) -> int:
    from cloud.config import CloudConfig, load_cloud_config
    from cloud.daemon import CloudDaemon
    from runtime import logs
    from runtime.daemon_run import run_daemon

    def log_setup(cfg: CloudConfig) -> None:
        logs.setup(cfg.cloud.log_level, cloud=cfg.cloud.id)

    return run_daemon("cloud", args.config, load_cloud_config, log_setup, lambda cfg, base: CloudDaemon(cfg, base).run)
