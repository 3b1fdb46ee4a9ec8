"""Emulated gateways for `pulsegate bench fleet`: many lightweight gateways in one process.

``python -m bench.fleet_gateways --port P --first I --count N --total T --beds B --minutes M --dir D``

Each emulated gateway has its own durable outbox (the real ``edge.outbox.Outbox``:
its own SQLite file, record ids and per-stream sequence numbers, records
deleted, in contract v2 (the default), only once the ingest's receipt names
them, the real ``edge.receipt_ledger.Ledger`` keeping what waits for one;
``--contract 1``: at the broker's PUBACK) and its own MQTT 5 client (its own
client id, a retained last-will offline status), but no pipeline, devices or
threads of paho: the clients share this process's event loop
(bench/mqtt_mux.py). Traffic per gateway, on an accelerated clock
(``--speed``: emulated seconds per wall second):

* every emulated minute, at the gateway's own offset within the minute (the
  fleet is spread evenly over the minute): one ``Summary`` of B beds x 8
  parameters (``interval_s = 60``) on ``summaries``;
* an ``Alarm`` on ``alarms`` in one minute of every ten (staggered by gateway);
* ``--raw``: every emulated second one ``RawBatch`` of B x 8 numerics on ``bulk``;
* every ``--status-s`` wall seconds a retained ``Status`` with its outbox backlog.

With receipts, each gateway subscribes to its own receipts topic. There is no
re-send timer: the fleet bench injects no faults, and a receipt that never
comes leaves the record in the outbox, so the bench's wait for ``done`` fails
instead of counting it as delivered.

Prints JSON lines: ``{"ready": ...}`` once connected (then it waits for the
wall time of emulated second 0 on stdin), ``{"done": ...}`` when
everything it produced was receipted by the ingest (v1: acknowledged by the broker), with the expected points
and seq sums per measurement and the wall time of every summary and alarm
append (the fleet bench measures end-to-end latency from them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from bench.mqtt_mux import MqttMux
from bench.outbox_driver import PARAMS, Expected
from edge.outbox import Outbox, Record
from edge.receipt_ledger import Ledger
from wire import codec, messages, topics


class EmuGateway:
    def __init__(self, idx: int, gw: str, site: str, outbox: Outbox, max_inflight: int) -> None:
        self.idx, self.gw, self.site, self.outbox = idx, gw, site, outbox
        self.max_inflight = max_inflight
        self.client: mqtt.Client | None = None
        self.connected = False
        self.inflight: dict[int, int] = {}  # mid -> record id
        self.appended: dict[str, list[float]] = {"summaries": [], "alarms": []}
        self.receipts = outbox.wire_version >= 2
        self.ledger = Ledger()  # contract v2: published, not yet receipted
        # the outbox read cursor (lane -> last id scanned), as the real uplink's: a delivered record whose delete
        # the outbox's writer has not committed yet is never read and published again; reset to rescan
        self.after: dict[int, int] = {}
        self.acked = 0
        self.refused = 0
        self.published = 0
        self.receipted = 0
        self.receipts_received = 0
        self.receipt_errors = 0

    def status(self, online: bool) -> bytes:
        box = self.outbox
        return codec.encode(messages.Status(v=box.wire_version, gw=self.gw, seq=box.reserve_seq("status"),
                                            t=time.time_ns(), online=online, backlog=box.backlog(),
                                            software="fleet-emulator"))

    def make_client(self, mux: MqttMux) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pg-{self.gw}", protocol=mqtt.MQTTv5,
                        reconnect_on_failure=False)
        c.max_inflight_messages_set(self.max_inflight)
        c.max_queued_messages_set(0)
        c.will_set(topics.uplink(self.site, self.gw, "status"), self.status(False), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_receipt
        mux.attach(c)
        self.client = c
        return c

    def _on_connect(self, c: mqtt.Client, u: object, flags: object, rc: ReasonCode, p: object) -> None:
        self.connected = not rc.is_failure
        if self.connected:
            if self.receipts:
                c.subscribe(topics.receipts(self.site, self.gw), qos=1)
            self.publish_status(True)

    def _on_disconnect(self, c: mqtt.Client, u: object, flags: object, rc: ReasonCode, p: object) -> None:
        self.connected = False
        gone = list(self.inflight.values())
        for rid in gone:
            self.ledger.forget(rid)
        self.outbox.release(gone)
        self.inflight.clear()  # republished from the outbox on the next connection
        self.after = {}

    def _on_publish(self, c: mqtt.Client, u: object, mid: int, rc: ReasonCode, p: object) -> None:
        rid = self.inflight.pop(mid, None)
        if rid is None:
            return  # a status message (not in the outbox)
        if rc.is_failure:
            self.refused += 1
            self.ledger.forget(rid)
            self.outbox.release([rid])
            self.after = {}  # read it again
            return
        self.acked += 1
        if self.receipts:
            self.ledger.acked(rid, time.monotonic())  # the record now waits for its receipt
        else:
            self.outbox.delete([rid])

    def _on_receipt(self, c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        try:
            rct = codec.decode_receipt(bytes(m.payload))
        except codec.WireError:
            self.receipt_errors += 1
            return
        if rct.gw != self.gw:
            self.receipt_errors += 1
            return
        self.receipts_received += 1
        done = self.ledger.apply(rct)
        if done:
            self.outbox.delete(done)
            self.receipted += len(done)

    def publish_status(self, online: bool) -> None:
        if self.client is not None and self.connected:
            self.client.publish(topics.uplink(self.site, self.gw, "status"), self.status(online), qos=1, retain=True)

    def wants_read(self) -> int:
        """How many records to read from the outbox now (0: nothing new, or the in-flight window is full)."""
        if not self.connected or len(self.inflight) >= self.max_inflight:
            return 0
        return self.max_inflight - len(self.inflight) if self.outbox.backlog() > len(self.ledger) else 0

    def publish(self, records: list[Record]) -> None:
        assert self.client is not None
        for r in records:
            info = self.client.publish(topics.uplink(self.site, self.gw, r.stream), r.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self.after = {}  # the rest of this read goes again
                return
            self.inflight[info.mid] = r.id
            self.ledger.sent(r.id, r.stream, r.seq, r.created)
            self.outbox.mark_inflight([r.id])
            self.published += 1


def _summary(t: int, beds: int, minute: int) -> messages.Summary:
    items = [messages.SummaryItem(bed=f"b{b}", patient=f"p{b}", param=p, t=t, count=60, min=60.0 + b % 7,
                                  max=90.0 + minute % 5, mean=75.0 + (b + minute) % 3, last=77.0)
             for b in range(beds) for p in PARAMS]
    return messages.Summary(v=messages.VERSION, gw="", seq=0, interval_s=60.0, items=items)


def _raw(t: int, beds: int, second: int) -> messages.RawBatch:
    items = [messages.Raw(bed=f"b{b}", patient=f"p{b}", param=p, t=t, value=70.0 + (b + second) % 20, quality=0)
             for b in range(beds) for p in PARAMS]
    return messages.RawBatch(v=messages.VERSION, gw="", seq=0, items=items)


def _alarm(t: int, minute: int) -> messages.Alarm:
    return messages.Alarm(v=messages.VERSION, gw="", seq=0, alarm_id=f"a{minute}", bed="b0", patient="p0", t=t,
                          state="raised", priority="high", kind="physiological", source="threshold",
                          condition="spo2_low", value=85.0, param="spo2")


async def _produce(gw: EmuGateway, args: argparse.Namespace, start: float, t0_ns: int, exp: Expected) -> None:
    """The gateway's traffic on the accelerated clock; appends go to its outbox (never waits on disk)."""
    offset_s = 60.0 * gw.idx / args.total  # spread over the minute
    step = 1 if args.raw else 60
    phase = offset_s % step
    for s in range(0, args.minutes * 60, step):
        delay = start + (s + phase) / args.speed - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if args.raw:
            msg = _raw(t0_ns + s * 1_000_000_000, args.beds, s)
            exp.add("raw", gw.outbox.append("bulk", msg), len(msg.items))
        if not args.raw or s % 60 == int(offset_s):
            minute = s // 60
            t = t0_ns + minute * 60_000_000_000
            msg_s = _summary(t, args.beds, minute)
            gw.appended["summaries"].append(time.time())
            exp.add("vitals", gw.outbox.append("summaries", msg_s), len(msg_s.items))
            if (gw.idx + minute) % 10 == 0:
                gw.appended["alarms"].append(time.time())
                exp.add("alarms", gw.outbox.append("alarms", _alarm(t + 1, minute)), 1)


def _read_all(want: list[tuple[EmuGateway, int]]) -> list[list[Record]]:
    return [g.outbox.read(n, exclude=g.ledger, after=g.after) for g, n in want]


async def _pump(gws: list[EmuGateway], stop: asyncio.Event) -> None:
    """Read what each gateway's outbox holds beyond its in-flight window and publish it (reads in a thread)."""
    while not stop.is_set():
        want = [(g, n) for g in gws if (n := g.wants_read())]
        if want:
            got = await asyncio.to_thread(_read_all, want)
            for (g, _), recs in zip(want, got, strict=True):
                if g.connected:  # records published meanwhile (another read) are skipped
                    g.publish([r for r in recs if r.id not in g.ledger])
                elif recs:
                    g.after = {}  # the link dropped while reading: read them again once it is back
        await asyncio.sleep(0.02)


async def _status_loop(gws: list[EmuGateway], every_s: float, stop: asyncio.Event) -> None:
    n = len(gws)
    i = 0
    while not stop.is_set():  # one gateway at a time, so the fleet's statuses are spread over the interval
        gws[i % n].publish_status(True)
        i += 1
        await asyncio.sleep(every_s / n)


async def _connect(gws: list[EmuGateway], mux: MqttMux, args: argparse.Namespace) -> None:
    for g in gws:
        c = g.make_client(mux)
        c.connect(args.host, args.port, keepalive=60, clean_start=True)
        await asyncio.sleep(0)
    deadline = time.monotonic() + 60
    while not all(g.connected for g in gws):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sum(not g.connected for g in gws)} gateways not connected after 60 s")
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace) -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    stop_all = asyncio.Event()
    main_task = asyncio.current_task()
    assert main_task is not None
    done = False

    def on_term() -> None:  # after "done": a clean goodbye; before it (the bench gave up): leave at once
        if done:
            stop_all.set()
        else:
            main_task.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_term)
    mux = MqttMux(loop)
    d = Path(args.dir)
    gws = [EmuGateway(i, f"fleet-gw{i:05d}", args.site,
                      Outbox(d / f"gw{i:05d}.sqlite", f"fleet-gw{i:05d}", sync="normal",
                             wire_version=args.contract),
                      args.max_inflight)
           for i in range(args.first, args.first + args.count)]
    await _connect(gws, mux, args)
    stop = asyncio.Event()
    pump = asyncio.create_task(_pump(gws, stop))
    status = asyncio.create_task(_status_loop(gws, args.status_s, stop))
    _say(ready=True, gateways=len(gws))
    start = float(await asyncio.to_thread(sys.stdin.readline))  # the bench's start signal: emulated second 0
    t0_ns = int(start) * 1_000_000_000
    exp = Expected()
    await asyncio.gather(*(_produce(g, args, start, t0_ns, exp) for g in gws))
    produced_at = time.time()
    while any(g.outbox.backlog() for g in gws) and not stop_all.is_set():  # noqa: ASYNC110 - outbox counters
        await asyncio.sleep(0.1)
    done = True
    _say(done=True, produce_end=produced_at, drained_at=time.time(), expected_points=exp.points,
         expected_seq_sum=exp.seq_sum, appended={g.gw: g.appended for g in gws},
         published=sum(g.published for g in gws), acked=sum(g.acked for g in gws),
         refused=sum(g.refused for g in gws), receipted=sum(g.receipted for g in gws),
         receipts=sum(g.receipts_received for g in gws), receipt_errors=sum(g.receipt_errors for g in gws))
    await stop_all.wait()  # the bench tells us to go once it has counted
    for g in gws:
        g.publish_status(False)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(pump, status, return_exceptions=True)
    for g in gws:
        if g.client is not None:
            g.client.disconnect()
        g.outbox.close()
    await mux.close()
    return 0


def _say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    try:
        return asyncio.run(run(_args(argv)))
    except asyncio.CancelledError:
        return 1


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fleet_gateways", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--site", default="fleet")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--total", type=int, required=True, help="gateways in the whole fleet (for the offsets)")
    p.add_argument("--beds", type=int, default=32)
    p.add_argument("--minutes", type=int, default=5)
    p.add_argument("--speed", type=float, default=1.0, help="emulated seconds per wall second")
    p.add_argument("--raw", action="store_true", help="also raw numerics every emulated second")
    p.add_argument("--status-s", type=float, default=10.0)
    p.add_argument("--max-inflight", type=int, default=100)
    p.add_argument("--dir", required=True)
    p.add_argument("--contract", type=int, choices=messages.SUPPORTED, default=messages.VERSION,
                   help="2: records leave the outbox on the ingest's receipt; 1: at the broker's PUBACK")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
