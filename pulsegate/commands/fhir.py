"""``pulsegate fhir export``: the cloud's data as a FHIR R4 transaction Bundle, and a push to a FHIR server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pulsegate.cli import Commands, example


def register(cmds: Commands) -> None:
    p = example(cmds.top.add_parser("fhir", help="FHIR R4 export of the cloud's data"),
                "pulsegate fhir export --since 1h --out bundle.json").add_subparsers(
        dest="fhir_cmd", metavar="ACTION", required=True)
    ex = p.add_parser("export", help="write a transaction Bundle of the last --since and/or push it to [fhir]")
    ex.add_argument("--config", type=Path, default=Path("/etc/pulsegate/cloud.toml"),
                    help="the cloud TOML ([influx] to read, [fhir] to push)")
    ex.add_argument("--since", default="1h", help="how far back: 30m, 1h, 7d (default 1h)")
    ex.add_argument("--out", type=Path, help="write the Bundle (JSON) to this file")
    ex.add_argument("--push", action="store_true", help="push to the FHIR server of [fhir] base_url")
    ex.add_argument("--influx-url", help="override [influx] url")
    ex.add_argument("--database", help="override [influx] database")
    ex.set_defaults(handler=_export)
    example(ex, "pulsegate fhir export --config /etc/pulsegate/cloud.toml --since 1h --out bundle.json",
            "pulsegate fhir export --since 7d --push   # to [fhir] base_url (conditional create, retries)")


def _export(args: argparse.Namespace) -> int:
    import asyncio

    from cloud.config import load_cloud_config
    from cloud.fhir.export import run_export
    from cloud.influx import InfluxWriter
    from runtime.configbase import SecretError
    from runtime.configload import ConfigError

    if args.out is None and not args.push:
        print("nothing to do: give --out FILE and/or --push", file=sys.stderr)
        return 2
    try:
        cfg = load_cloud_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    influx_cfg = cfg.influx.model_copy(update={k: v for k, v in (("url", args.influx_url),
                                                                 ("database", args.database)) if v})

    async def run() -> dict[str, object]:
        influx = InfluxWriter.from_config(influx_cfg, args.config.parent)
        try:
            return await run_export(influx, cfg.fhir, args.since, args.out, args.push, args.config.parent)
        finally:
            await influx.close()

    try:
        summary = asyncio.run(run())
    except (ValueError, SecretError, OSError) as exc:
        print(f"fhir export failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0 if summary.get("ok") else 1
