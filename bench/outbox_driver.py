"""A synthetic gateway for fault tests and benchmarks: Outbox + Uplink producing numbered messages.

``python -m bench.outbox_driver --db PATH --gateway G --port P --count N [--rate R]``
appends one-point bulk messages (a ``RawBatch`` whose capture time is derived
from its sequence number, so a re-used number after a crash carries the same
point) until the ``bulk`` stream's sequence reaches N, then keeps the uplink
running until the outbox is empty and exits 0. Killing it with -9 and starting
it again with the same arguments resumes after the last durable record.

``--profile ward --beds N --duration S`` instead produces a ward's traffic for
S seconds: every second one raw batch (N beds x 8 parameters, bulk lane), one
summary (same size) and one scores message, and an alarm every 10 s
(``pulsegate bench outage`` uses it).

It prints JSON lines on stdout: ``{"ready": true}``, progress lines, and
``{"drained": true, "expected_points": {...}, "expected_seq_sum": {...}}`` at the
end: per measurement, how many points the cloud must hold and the sum of their
``seq`` fields (the tests and benches compare InfluxDB against them).
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


PARAMS = ("heart_rate", "spo2", "resp_rate", "pulse_rate", "nibp_sys", "nibp_dia", "temperature", "perfusion_index")


class Expected:
    """What the cloud should end up with: points and the sum of their seq fields, per measurement."""

    def __init__(self) -> None:
        self.points: dict[str, int] = {}
        self.seq_sum: dict[str, int] = {}

    def add(self, measurement: str, seq: int, points: int) -> None:
        self.points[measurement] = self.points.get(measurement, 0) + points
        self.seq_sum[measurement] = self.seq_sum.get(measurement, 0) + seq * points


def ward_tick(outbox: Outbox, tick: int, beds: int, exp: Expected) -> None:
    """One second of a ward: raw numerics (bulk), a summary and scores per bed, an alarm every 10 s."""
    t = T0 + tick * 1_000_000_000
    raws = [messages.Raw(bed=f"b{b}", patient=f"p{b}", param=p, t=t, value=90.0 + (b + tick) % 10, quality=0)
            for b in range(beds) for p in PARAMS]
    exp.add("raw", outbox.append("bulk", messages.RawBatch(v=messages.VERSION, gw="", seq=0, items=raws)), len(raws))
    items = [messages.SummaryItem(bed=f"b{b}", patient=f"p{b}", param=p, t=t, count=1, min=90.0, max=99.0, mean=95.0,
                                  last=96.0) for b in range(beds) for p in PARAMS]
    summ = messages.Summary(v=messages.VERSION, gw="", seq=0, interval_s=1.0, items=items)
    exp.add("vitals", outbox.append("summaries", summ), len(items))
    scores = [messages.Score(bed=f"b{b}", patient=f"p{b}", t=t, news2=b % 7, anomaly=0.1) for b in range(beds)]
    exp.add("scores", outbox.append("summaries", messages.Scores(v=messages.VERSION, gw="", seq=0, items=scores)),
            len(scores))
    if tick % 10 == 0:
        alarm = messages.Alarm(v=messages.VERSION, gw="", seq=0, alarm_id=f"a{tick}", bed="b0", patient="p0", t=t,
                               state="raised", priority="high", kind="physiological", source="threshold",
                               condition="spo2_low", value=85.0, param="spo2")
        exp.add("alarms", outbox.append("alarms", alarm), 1)


async def drive(args: argparse.Namespace) -> int:
    outbox = Outbox(Path(args.db), args.gateway, quota_bytes=int(args.quota_mb * 1024 * 1024), sync=args.sync,
                    wire_version=messages.V1 if args.no_receipts else messages.VERSION)
    uplink = Uplink(outbox, args.host, args.port, args.site, args.gateway, max_inflight=args.max_inflight,
                    status_interval_s=1.0, reconnect_min_s=0.2, reconnect_max_s=1.0,
                    receipt_timeout_s=args.receipt_timeout_s, receipt_silence_s=args.receipt_silence_s)
    await uplink.start()
    task = asyncio.create_task(uplink.run())
    _say(ready=True)
    watch = asyncio.create_task(_watch_connects(uplink))
    began = time.monotonic()
    exp = Expected()
    if args.profile == "ward":
        tick = 0
        while time.monotonic() - began < args.duration:
            ward_tick(outbox, tick, args.beds, exp)
            tick += 1
            _say(tick=tick, points=sum(exp.points.values()), backlog=outbox.backlog(), connected=uplink.connected,
                 unreceipted=uplink.unreceipted)
            await asyncio.sleep(max(0.0, began + tick - time.monotonic()))
    else:
        await _numbered(outbox, uplink, args, exp)
    produced_s = time.monotonic() - began
    await asyncio.to_thread(outbox.flush)
    while outbox.backlog() > 0:  # noqa: ASYNC110 - polling a counter of another thread
        await asyncio.sleep(0.05)
    _say(drained=True, produce_s=round(produced_s, 3), total_s=round(time.monotonic() - began, 3),
         acked=uplink.acked, resent=uplink.resent, dropped=outbox.dropped, expected_points=exp.points,
         expected_seq_sum=exp.seq_sum)
    watch.cancel()
    await uplink.stop()
    await task
    outbox.close()
    return 0


async def _watch_connects(uplink: Uplink) -> None:
    """Report each (re)connection with its wall-clock time (benches measure drains from it)."""
    seen = uplink.connects
    while True:
        if uplink.connects != seen:
            seen = uplink.connects
            _say(connected_at=time.time(), connects=seen)
        await asyncio.sleep(0.01)


async def _numbered(outbox: Outbox, uplink: Uplink, args: argparse.Namespace, exp: Expected) -> None:
    tick = 0.01
    per_tick = max(1, int(args.rate * tick)) if args.rate > 0 else 50
    seq = outbox.peek_seq("bulk")
    while seq <= args.count:
        for _ in range(per_tick):
            if seq > args.count:
                break
            got = outbox.append("bulk", raw_point(seq, args.beds))
            assert got == seq
            exp.add("raw", seq, args.beds)
            seq += 1
        if seq % 100 < per_tick or seq > args.count:
            _say(appended=seq - 1, backlog=outbox.backlog(), connected=uplink.connected,
                 unreceipted=uplink.unreceipted)
        await asyncio.sleep(tick if args.rate > 0 else 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.outbox_driver", description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--site", default="site1")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=0, help="last sequence number to produce (profile numbered)")
    p.add_argument("--rate", type=float, default=1000.0, help="messages per second (0 = as fast as possible)")
    p.add_argument("--beds", type=int, default=1, help="points per message (numbered) or beds (ward)")
    p.add_argument("--quota-mb", type=float, default=512.0)
    p.add_argument("--sync", choices=("full", "normal"), default="full")
    p.add_argument("--max-inflight", type=int, default=1000)
    p.add_argument("--profile", choices=("numbered", "ward"), default="numbered",
                   help="numbered: one bulk message per number up to --count; ward: --beds beds for --duration s")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of ward traffic (profile ward)")
    p.add_argument("--no-receipts", action="store_true", help="speak contract v1 (forget records at PUBACK)")
    p.add_argument("--receipt-timeout-s", type=float, default=5.0)
    p.add_argument("--receipt-silence-s", type=float, default=300.0)
    return asyncio.run(drive(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
