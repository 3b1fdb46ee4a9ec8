"""``pulsegate bench ambulance``: one patient on a monitor in an ambulance on a cellular link, through a real
outbox, uplink and mosquitto, with the link cut by a TCP proxy as the route goes through dead zones.

**Accelerated clock.** The clinical side (monitor samples, alarms, NEWS2,
summaries, the budget governor, GPS fixes, the notice sender) runs on a
simulated clock ``accel`` times faster than real time (default 60: an hour in
a minute). The network side is real and runs in real time: the outbox, the
uplink (paho, QoS 1), the TCP proxy standing for the radio link, mosquitto, and
the cloud arrivals service. So bytes are real bytes per *simulated* hour, and
the notice latency is a real latency (crew update handed to the outbox ->
revision shown on the hospital's board, real seconds), counted for revisions
sent while the link was up. The uplink's status interval is the metered one
(300 s) divided by ``accel``; reconnects after a cut take the real 0.1-0.5 s.

Link profiles (simulated time): ``urban`` 15 s cuts every 6 minutes;
``rural`` 90 s cuts every 5 minutes (up ~70 % of the time, like the 70-76 %
rural ECG transmission success reported in AJEM 2013); ``tunnel`` one
5-minute cut in the middle of the run (the route's tunnel, no GPS fix either).

Figures: ``bytes_per_hour`` (TCP payload both ways through the proxy, per
simulated hour: MQTT framing, status, pings and PUBACKs included; IP/TCP/TLS
headers not), ``budget_charged_bytes_per_hour`` (what the gateway's governor
counted, with its 40-byte per-message estimate for TCP/IP/TLS), ``notices_sent``,
``notice_latency_s_p95``, ``alarms_lost``, ``summaries_lost``, ``notices_lost``
(produced and never received by a cloud-side subscriber), ``summaries_delayed``
(received more than 60 simulated seconds after their interval ended), ``held_in_outbox`` (records per stream
the budget still holds in the outbox at the end, for the next free link or the next hour: held, not lost;
the ``*_lost`` figures exclude them).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiomqtt

from bench.linkproxy import LinkProxy
from bench.localservices import Mosquitto
from clinical.alarms.profiles import BedConfig, ClinicalConfig
from clinical.sample import Sample
from clinical.stage import ClinicalStage
from cloud.arrivals import ArrivalsService
from edge.budget import Budget, BudgetConfig
from edge.daemon import alarm_message
from edge.links import LinkSet
from edge.notices import NoticeSender
from edge.outbox import Outbox
from edge.position import PositionTracker
from edge.pseudonym import Pseudonymizer
from edge.summaries import Summarizer
from edge.uplink import Uplink
from firmware_bridge.emulators.gps import HOSPITALS, make_route
from firmware_bridge.emulators.scenarios import Deterioration
from firmware_bridge.nmea import Fix
from wire import codec, topics
from wire.messages import V1, VERSION, Message, Notice, Summary, Where

GW, SITE, BED = "amb-bench", "ems", "stretcher"
T0 = 1_800_000_000.0
PROFILES = ("urban", "rural", "tunnel")


def outages(profile: str, minutes: float) -> list[tuple[float, float]]:
    """(start, end) simulated seconds with the link down."""
    total = minutes * 60
    if profile == "urban":
        return [(t, t + 15) for t in range(300, int(total), 360)]
    if profile == "rural":
        return [(t, t + 90) for t in range(200, int(total), 300)]
    if profile == "tunnel":
        mid = total / 2
        return [(mid - 150, mid + 150)]
    raise ValueError(f"unknown link profile {profile!r}; choose {', '.join(PROFILES)}")


class Cloud:
    """A cloud-side subscriber (persistent session on the real broker): what arrived, when (simulated time)."""

    def __init__(self, port: int, sim_now: Any) -> None:
        self.port = port
        self.sim_now = sim_now
        self.got: dict[str, dict[int, float]] = {}  # stream -> seq -> first arrival (sim)
        self.copies = 0
        self.bytes_by_stream: Counter[str] = Counter()
        self.summaries: dict[int, float] = {}  # seq -> interval end (sim s)
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, identifier="bench-cloud", clean_session=False) as c:
            await c.subscribe(f"{topics.PREFIX}/{SITE}/{GW}/+", qos=1)
            self.ready.set()
            async for m in c.messages:
                stream = str(m.topic).rsplit("/", 1)[-1]
                msg = codec.decode(bytes(m.payload))  # type: ignore[arg-type]
                seen = self.got.setdefault(stream, {})
                self.copies += 1
                self.bytes_by_stream[stream] += len(m.payload) + len(str(m.topic))  # type: ignore[arg-type]
                if msg.seq not in seen:
                    seen[msg.seq] = self.sim_now()
                    if isinstance(msg, Summary) and msg.items:
                        self.summaries[msg.seq] = msg.items[0].t / 1e9 + msg.interval_s


async def run(minutes: float, profile: str, accel: float = 60.0, budget_bytes_per_hour: int = 64 * 1024,
              seed: int = 0, workdir: Path | None = None) -> dict[str, Any]:
    cuts = outages(profile, minutes)
    with tempfile.TemporaryDirectory(prefix="pg-bench-amb-") as tmpd:
        tmp = workdir or Path(tmpd)
        broker = Mosquitto(tmp / "mosquitto", extra_conf="").start()
        try:
            return await _run(tmp, broker, minutes, profile, cuts, accel, budget_bytes_per_hour, seed)
        finally:
            broker.stop()


async def _run(tmp: Path, broker: Mosquitto, minutes: float, profile: str, cuts: list[tuple[float, float]],
               accel: float, budget_bph: int, seed: int) -> dict[str, Any]:
    real0 = time.monotonic()
    sim = {"t": 0.0}

    def sim_now() -> float:
        return sim["t"]

    def sim_wall() -> float:
        return T0 + sim["t"]

    proxy = await LinkProxy(broker.port).start()
    # contract v1 (no receipts): the bench's cloud is a plain subscriber, not an ingest that receipts
    outbox = Outbox(tmp / "outbox.sqlite", GW, wire_version=V1)
    # budget 0: no governor (what an ambulance was before: a ward gateway), still counted for the figures
    governed = budget_bph > 0
    budget = Budget(BudgetConfig(bytes_per_hour=budget_bph if governed else 10**12,
                                 bytes_per_month=10**15 if not governed else BudgetConfig().bytes_per_month),
                    clock=sim_wall)
    up = Uplink(outbox, "127.0.0.1", proxy.port, SITE, GW, status_interval_s=300.0 / accel, reconnect_min_s=0.1,
                reconnect_max_s=0.5, resume_holdoff_s=0.2, keepalive_s=60)
    links = LinkSet(outbox, [("cell", True, up)], budget)
    cloud = Cloud(broker.port, sim_now)
    arrivals = ArrivalsService([("127.0.0.1", broker.port, None, None, None)], client_id="bench-arrivals")
    produced: dict[str, int] = {}
    sent_real: dict[int, tuple[float, bool]] = {}  # notice rev -> (real time handed over, link up then)

    def publish(stream: str, msg: Message) -> None:
        outbox.append(stream, msg)
        produced[stream] = produced.get(stream, 0) + 1
        if isinstance(msg, Notice):
            sent_real[msg.rev] = (time.monotonic(), up.connected and proxy.is_up)

    pseud = Pseudonymizer(b"bench-key-0123456789abcdef")
    clinical = ClinicalStage(ClinicalConfig(), [BedConfig(id=BED, patient="EPCR-1")],
                             on_alarm=lambda u: publish("alarms", alarm_message(GW, pseud, u)),
                             clock=sim_now, wall=sim_wall)
    summarizer = Summarizer(GW, publish, pseud, 60.0, raw=True, patients={BED: "EPCR-1"}, scores=clinical.scores)
    tracker = PositionTracker()
    summarizer.position = tracker.position
    route = make_route({"urban": "city", "rural": "rural", "tunnel": "tunnel"}[profile], max(minutes, 6.0))
    sender = NoticeSender(GW, publish, clinical.snapshot, lambda bed: pseud.pseudonym("EPCR-1"), tracker,
                          {"city-general": HOSPITALS["city-general"]}, clock=sim_wall,
                          mono=lambda: sim["t"])
    scenario = Deterioration(seed, duration_s=minutes * 60 * 0.6, start_s=120.0)
    board_seen: dict[int, float] = {}
    tasks = [asyncio.create_task(cloud.run()), asyncio.create_task(arrivals.run())]
    await arrivals.start()
    await links.start()
    tasks.append(asyncio.create_task(links.run()))
    await asyncio.wait_for(cloud.ready.wait(), 10)

    async def watch_board() -> None:
        while True:
            e = arrivals.board.entries.get(sender.current.notice_id) if sender.current else None
            if e is not None:
                for _, rev in e.history:
                    board_seen.setdefault(rev, time.monotonic())
            await asyncio.sleep(0.01)

    tasks.append(asyncio.create_task(watch_board()))
    next_where = 0.0
    try:
        for s in range(int(minutes * 60)):
            sim["t"] = float(s)
            target = real0 + s / accel
            if (delay := target - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            down = any(a <= s < b for a, b in cuts)
            if down and proxy.is_up:
                proxy.down()
            elif not down and not proxy.is_up:
                proxy.up()
            _feed(clinical, summarizer, scenario, s, sim_wall())
            st = route.at(s)
            tracker.on_fix(Fix(sim_wall(), st.fix, st.lat, st.lon, st.speed_kmh) if st.fix else Fix(sim_wall(), False))
            clinical.tick(s, sim_wall())
            summarizer.tick(s, sim_wall())
            if governed:
                budget.update()
                summarizer.set_interval(budget.summary_interval(60.0))
                summarizer.raw_every = budget.raw_every()
            if s == 60:
                sender.request("city-general", "sepsis", BED)
            sender.tick()
            if s >= next_where and (pos := tracker.position()) is not None:
                publish("status", Where(v=VERSION, gw=GW, seq=0, t=int(sim_wall() * 1e9), position=pos))
                next_where = s + 60.0 * summarizer.interval_s / 60.0
        summarizer.flush()
        proxy.up()
        sim_end = sim["t"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            held = Counter(r.stream for r in await asyncio.to_thread(outbox.read, 100_000))
            if all(produced[k] <= len(cloud.got.get(k, {})) + held.get(k, 0) for k in produced if k != "status"):
                break
    finally:
        await links.stop()
        await arrivals.stop()
        await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        outbox.close()
        await proxy.stop()
    hours = max(sim_end + 1, 1.0) / 3600
    lat = [board_seen[r] - t for r, (t, was_up) in sent_real.items() if was_up and r in board_seen]
    delayed = sum(1 for seq, end in cloud.summaries.items() if cloud.got["summaries"][seq] - (end - T0) > 60)

    def lost(stream: str) -> int:
        """Produced, never received, and not waiting in the outbox either (held by the budget is not lost)."""
        return produced.get(stream, 0) - len(cloud.got.get(stream, {})) - held.get(stream, 0)

    return {
        "minutes": minutes, "link_profile": profile, "accel": accel, "clock": f"accelerated x{accel:g}",
        "link_down_s": sum(b - a for a, b in cuts), "real_s": round(time.monotonic() - real0, 1),
        "bytes_per_hour": round((proxy.bytes_up + proxy.bytes_down) / hours),
        "bytes_up_per_hour": round(proxy.bytes_up / hours),
        "budget_bytes_per_hour": budget_bph,
        "budget_charged_bytes_per_hour": round(budget.metered_total / hours),
        "budget_level_final": budget.level, "budget_level_changes": budget.level_changes,
        "summary_interval_final_s": summarizer.interval_s,
        "notices_sent": sender.sent, "notices_on_board": len(board_seen),
        "notice_latency_s_p50": round(statistics.median(lat), 3) if lat else None,
        "notice_latency_s_p95": round(_p95(lat), 3) if lat else None,
        "notice_latency_samples": len(lat),
        "alarms_sent": produced.get("alarms", 0), "alarms_lost": lost("alarms"),
        "summaries_sent": produced.get("summaries", 0), "summaries_lost": lost("summaries"),
        "summaries_delayed": delayed, "notices_lost": lost("notices"), "bulk_lost": lost("bulk"),
        "held_in_outbox": dict(held),
        "payload_bytes_per_hour_by_stream": {k: round(v / hours) for k, v in sorted(cloud.bytes_by_stream.items())},
        "duplicates_on_wire": cloud.copies - sum(len(v) for v in cloud.got.values()),
        "handovers": links.handovers, "reconnects": up.connects,
    }


def _p95(xs: list[float]) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, math.ceil(0.95 * len(ys)) - 1)]


def _feed(clinical: ClinicalStage, summarizer: Summarizer, scenario: Deterioration, s: int, wall: float) -> None:
    """One simulated second of a monitor: HR, PR, SpO2, RR each second; NIBP and temperature every 5 minutes."""
    v = scenario.at(float(s))
    values = [("heart_rate", v.hr, "/min"), ("pulse_rate", v.hr, "/min"), ("spo2", v.spo2, "%"),
              ("resp_rate", v.rr, "/min")]
    if s % 300 == 0:
        values += [("nibp_sys", v.nibp_sys, "mm[Hg]"), ("nibp_dia", v.nibp_dia, "mm[Hg]"),
                   ("temperature", v.temp, "Cel")]
    for param, value, unit in values:
        sample = Sample(BED, param, round(value, 1), unit, float(s), wall, device="monitor")
        clinical.on_sample(sample)
        summarizer.on_sample(sample)
