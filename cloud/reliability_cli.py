"""Commands of the reliable uplink: `pulsegate bench ingest`, `pulsegate bench outage`."""

from __future__ import annotations

import argparse
import asyncio
import json

from pulsegate.cli import Commands


def register(cmds: Commands) -> None:
    p = cmds.bench.add_parser("ingest", help="InfluxDB write rate: straight vs through outbox, MQTT and ingest")
    p.add_argument("--points", type=int, default=200_000)
    p.add_argument("--per-message", type=int, default=500, help="points per uplink message")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_ingest)
    o = cmds.bench.add_parser("outage", help="a gateway loses its broker for S seconds: loss, doubles, drain time")
    o.add_argument("--beds", type=int, default=64)
    o.add_argument("--offline", type=float, default=60.0, help="seconds without the broker")
    o.add_argument("--broker-kill", action="store_true",
                   help="kill the broker with SIGKILL (a crash) instead of stopping it (SIGTERM)")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.set_defaults(handler=_outage)


def _print(result: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>28}: {v}")


def _ingest(args: argparse.Namespace) -> int:
    from cloud.reliability_bench import bench_ingest

    result = asyncio.run(bench_ingest(args.points, args.per_message))
    _print(result, args.json)
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


def _outage(args: argparse.Namespace) -> int:
    from cloud.reliability_bench import bench_outage

    result = asyncio.run(bench_outage(args.beds, args.offline, broker_kill=args.broker_kill))
    _print(result, args.json)
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1
