"""A synthetic gateway for fault tests and benchmarks: Outbox + Uplink producing numbered messages.

``python -m edge.outbox_driver --db PATH --gateway G --port P --count N [--rate R]``
appends one-point bulk messages (a ``RawBatch`` whose capture time is derived
from its sequence number, so a re-used number after a crash carries the same
point) until the ``bulk`` stream's sequence reaches N, then keeps the uplink
running until the outbox is empty and exits 0. Killing it with -9 and starting
it again with the same arguments resumes after the last durable record.

It prints JSON lines on stdout: ``{"appended": seq}`` now and then and
``{"drained": true, ...}`` at the end (the tests and benches read them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from edge.outbox import Outbox
from edge.uplink import Uplink
from wire import messages

T0 = 1_700_000_000_000_000_000


def raw_point(seq: int, beds: int = 1, bed: int | None = None) -> messages.RawBatch:
    """The message numbered ``seq`` (capture time = T0 + seq ms; one point, or one per bed)."""
    beds_list = [bed] if bed is not None else list(range(beds))
    items = [messages.Raw(bed=f"b{b}", patient=f"p{b}", param="heart_rate", t=T0 + seq * 1_000_000,
                          value=60.0 + seq % 40, quality=0) for b in beds_list]
    return messages.RawBatch(v=messages.VERSION, gw="", seq=0, items=items)


def _say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def drive(args: argparse.Namespace) -> int:
    outbox = Outbox(Path(args.db), args.gateway, quota_bytes=int(args.quota_mb * 1024 * 1024), sync=args.sync)
    uplink = Uplink(outbox, args.host, args.port, args.site, args.gateway, max_inflight=args.max_inflight,
                    status_interval_s=1.0, reconnect_min_s=0.2, reconnect_max_s=1.0)
    await uplink.start()
    task = asyncio.create_task(uplink.run())
    began = time.monotonic()
    tick = 0.01
    per_tick = max(1, int(args.rate * tick)) if args.rate > 0 else 1000
    seq = outbox.peek_seq("bulk")
    while seq <= args.count:
        for _ in range(per_tick):
            if seq > args.count:
                break
            got = outbox.append("bulk", raw_point(seq, args.beds))
            assert got == seq
            seq += 1
        if seq % 100 < per_tick or seq > args.count:
            _say(appended=seq - 1, backlog=outbox.backlog(), connected=uplink.connected)
        await asyncio.sleep(tick if args.rate > 0 else 0)
    produced_s = time.monotonic() - began
    await asyncio.to_thread(outbox.flush)
    while outbox.backlog() > 0:  # noqa: ASYNC110 - polling a counter of another thread
        await asyncio.sleep(0.05)
    _say(drained=True, produce_s=round(produced_s, 3), total_s=round(time.monotonic() - began, 3),
         acked=uplink.acked)
    await uplink.stop()
    await task
    outbox.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.outbox_driver", description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--site", default="site1")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True, help="last sequence number to produce")
    p.add_argument("--rate", type=float, default=1000.0, help="messages per second (0 = as fast as possible)")
    p.add_argument("--beds", type=int, default=1, help="points per message")
    p.add_argument("--quota-mb", type=float, default=512.0)
    p.add_argument("--sync", choices=("full", "normal"), default="full")
    p.add_argument("--max-inflight", type=int, default=1000)
    return asyncio.run(drive(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
