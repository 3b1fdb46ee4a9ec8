"""``pulsegate cloud run --config FILE``: the cloud ingest + API daemon."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pulsegate.cli import Commands


def register(cmds: Commands) -> None:
    p = cmds.top.add_parser("cloud", help="the cloud daemon").add_subparsers(dest="cloud_cmd", required=True)
    run = p.add_parser("run", help="run the cloud ingest + API daemon (systemd Type=notify)")
    run.add_argument("--config", type=Path, required=True)
    run.set_defaults(handler=_run)
    pub = cmds.model.add_parser("publish", help="send a signed model folder to gateways (retained MQTT message)")
    pub.add_argument("model_dir", type=Path)
    pub.add_argument("--host", default="127.0.0.1")
    pub.add_argument("--port", type=int, default=1883)
    pub.add_argument("--site", required=True)
    pub.add_argument("--gateway", action="append", required=True, help="repeat for several gateways")
    pub.add_argument("--username")
    pub.add_argument("--password-file", type=Path)
    pub.add_argument("--tls-ca")
    pub.set_defaults(handler=_publish)


def _publish(args: argparse.Namespace) -> int:
    import json

    from cloud.model_publish import publish_model
    from pulsegate.configbase import read_optional_secret

    password = read_optional_secret(str(args.password_file) if args.password_file else None)
    try:
        size = publish_model(args.model_dir, args.host, args.port, args.site, args.gateway, args.username, password,
                             args.tls_ca)
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        print(f"publish failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"published": str(args.model_dir), "gateways": args.gateway, "bytes": size}))
    return 0


def _run(args: argparse.Namespace) -> int:
    from cloud.config import CloudConfig, load_cloud_config
    from cloud.daemon import CloudDaemon
    from pulsegate import logs
    from pulsegate.daemon_cli import run_daemon

    def log_setup(cfg: CloudConfig) -> None:
        logs.setup(cfg.cloud.log_level, cloud=cfg.cloud.id)

    return run_daemon("cloud", args.config, load_cloud_config, log_setup, lambda cfg, base: CloudDaemon(cfg, base).run)
