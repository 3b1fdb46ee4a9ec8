"""``pulsegate edge run --config FILE``: the gateway daemon."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from pulsegate.cli import Commands


def register(cmds: Commands) -> None:
    p = cmds.top.add_parser("edge", help="the gateway daemon").add_subparsers(dest="edge_cmd", required=True)
    run = p.add_parser("run", help="run the gateway daemon (systemd Type=notify)")
    run.add_argument("--config", type=Path, required=True)
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from edge.config import load_edge_config
    from edge.daemon import EdgeDaemon
    from pulsegate import logs
    from pulsegate.configbase import SecretError
    from pulsegate.configload import ConfigError

    try:
        cfg = load_edge_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid edge config", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    logs.setup(cfg.gateway.log_level, gateway=cfg.gateway.id, site=cfg.gateway.site)
    try:
        daemon = EdgeDaemon(cfg, args.config.resolve().parent)
    except (SecretError, ValueError, OSError) as exc:
        logs.get_logger("edge").error("startup_failed", error=str(exc))
        return 2
    return asyncio.run(daemon.run())
