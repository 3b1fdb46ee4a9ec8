"""Run one ingest worker as its own process (fault tests, benches; `pulsegate cloud run` is the daemon).

``python -m cloud.ingest_main --port P --influx-url URL --database DB --client-id ID [--group G]``
Stops cleanly on SIGTERM/SIGINT (pending batches land or are left unacknowledged).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from cloud.influx import InfluxConfig
from cloud.influx_client import open_writer
from cloud.ingest import IngestWorker
from runtime import logs
from runtime.supervisor import Supervisor

log = logs.get_logger("cloud.ingest_main")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cloud.ingest_main", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--influx-url", required=True)
    p.add_argument("--database", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--group", default="ingest")
    p.add_argument("--batch-points", type=int, default=20000)
    p.add_argument("--flush-s", type=float, default=1.0)
    p.add_argument("--deadletter-dir", default=None)
    p.add_argument("--schema", action="store_true", help="create retention policies and rollups at start")
    p.add_argument("--no-receipts", action="store_true", help="send no receipts (a v1 ingest, for tests)")
    p.add_argument("--receipt-interval-s", type=float, default=1.0)
    p.add_argument("--drop-receipts", type=int, default=0,
                   help="fault injection: throw the first N receipts away (lost receipts)")
    p.add_argument("--die-after-batches", type=int, default=0,
                   help="fault injection: exit at once (as kill -9 would) after the Nth batch InfluxDB accepted, "
                        "before its receipts and acknowledgements")
    p.add_argument("--api", choices=("v1", "v2"), default="v1")
    p.add_argument("--writer", choices=("http", "influxdb-client"), default="http")
    p.add_argument("--org", default=None)
    p.add_argument("--token-file", default=None, help="path or credential:NAME")
    p.add_argument("--receive-maximum", type=int, default=20000)
    args = p.parse_args(argv)
    cfg = InfluxConfig(url=args.influx_url, database=args.database, api=args.api, writer=args.writer, org=args.org,
                       token_file=args.token_file)
    influx = open_writer(cfg)
    schema = cfg if args.schema else None
    worker = IngestWorker(args.host, args.port, influx, client_id=args.client_id, group=args.group,
                          batch_points=args.batch_points, flush_s=args.flush_s,
                          deadletter_dir=Path(args.deadletter_dir) if args.deadletter_dir else None, schema=schema,
                          receipts=not args.no_receipts, receipt_interval_s=args.receipt_interval_s,
                          receive_maximum=args.receive_maximum)
    worker.receipts.drop_next = args.drop_receipts
    if args.die_after_batches > 0:
        limit = args.die_after_batches

        def die(batches: int) -> None:
            if batches >= limit:
                os._exit(137)

        worker.on_written = die
    logs.setup("info", client_id=args.client_id)
    rc = asyncio.run(Supervisor([worker]).run())
    log.info("ingest_stopped", received=worker.received, acked=worker.acked, points=worker.points,
             receipts=worker.receipts.sent, receipts_dropped=worker.receipts.dropped)
    return rc


if __name__ == "__main__":
    sys.exit(main())
