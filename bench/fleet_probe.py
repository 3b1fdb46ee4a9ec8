"""What `pulsegate bench fleet` watches while it runs: CPU and memory of the processes, arrivals in InfluxDB.

Arrivals: every ``every_s`` the probe asks InfluxDB, per gateway, how many
summaries (the ``vitals`` point of bed b0, heart_rate: one per Summary
message, written in the same batch as the rest of that message) and alarms
are stored; when a gateway's count rises from a to b, messages a+1..b arrived
at that poll's start. The latency of a gateway's k-th message is that arrival
minus the wall time its k-th append to the outbox happened (so figures are
rounded up by at most ``every_s`` plus the query's time).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psutil

from cloud.influx import InfluxError, InfluxWriter


class Probe:
    def __init__(self, db: InfluxWriter, site: str, pids: dict[str, list[int]], every_s: float = 0.5) -> None:
        self.db, self.site, self.every_s = db, site, every_s
        self.procs = {k: [psutil.Process(p) for p in v] for k, v in pids.items()}
        self.cpu: dict[str, list[tuple[float, float]]] = {}
        self.rss: dict[str, float] = {}
        self.arrivals: dict[str, dict[str, list[float]]] = {}
        self.last_arrival = 0.0
        self.stop = asyncio.Event()
        self._since_s = int(time.time()) - 1

    async def run(self) -> None:
        first = {k: [_cpu(p) for p in ps] for k, ps in self.procs.items()}
        sampler = asyncio.create_task(self._sample(first))
        while not self.stop.is_set():
            began = time.time()
            try:
                await self._poll(began)
            except InfluxError:
                pass  # influxd paused or busy: the next poll sees it
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=max(0.0, self.every_s - (time.time() - began)))
            except TimeoutError:
                pass
        await sampler

    async def _sample(self, first: dict[str, list[float]]) -> None:
        while True:
            for k, ps in self.procs.items():
                self.cpu[k] = [(first[k][i], _cpu(p)) for i, p in enumerate(ps)]
                rss = sum(_rss(p) for p in ps) / 2**20
                self.rss[k] = max(self.rss.get(k, 0.0), rss)
            if self.stop.is_set():
                return
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=1.0)
            except TimeoutError:
                pass

    async def _poll(self, at: float) -> None:
        since = f"time >= {self._since_s}s AND site = '{self.site}'"
        for stream, q in (("summaries", f"SELECT count(seq) FROM vitals WHERE {since} AND bed = 'b0' AND "
                                        "param = 'heart_rate' GROUP BY gateway"),
                          ("alarms", f"SELECT count(seq) FROM alarms WHERE {since} GROUP BY gateway")):
            for r in await self.db.query(q):
                for s in r.get("series", []):
                    n = int(s["values"][0][1])
                    seen = self.arrivals.setdefault(s["tags"]["gateway"], {}).setdefault(stream, [])
                    if n > len(seen):
                        seen.extend([at] * (n - len(seen)))
                        self.last_arrival = max(self.last_arrival, at)

    async def status_backlog(self, start: float) -> dict[str, Any]:
        """What the gateways' retained status reported during the run: the largest backlog of each."""
        rows = await self.db.rows(f"SELECT max(backlog) FROM status WHERE time >= {int(start) - 1}s "
                                  f"AND site = '{self.site}' GROUP BY gateway")
        backlogs = [int(r["max"]) for r in rows]
        return {"status_gateways": len(backlogs), "status_backlog_max": max(backlogs, default=0),
                "status_gateways_with_backlog": sum(b > 0 for b in backlogs)}

    def arrived(self, stream: str) -> int:
        return sum(len(v.get(stream, [])) for v in self.arrivals.values())

    def rss_max_mb(self, key: str) -> float:
        return round(self.rss.get(key, 0.0), 1)


def _cpu(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return 0.0


def _rss(p: psutil.Process) -> float:
    try:
        return float(p.memory_info().rss)
    except psutil.Error:
        return 0.0


def cpu_s(samples: list[tuple[float, float]]) -> float:
    return sum(last - first for first, last in samples)


def latencies(appended: dict[str, dict[str, list[float]]], arrivals: dict[str, dict[str, list[float]]]) -> list[float]:
    out: list[float] = []
    for gw, streams in appended.items():
        for stream, times in streams.items():
            got = arrivals.get(gw, {}).get(stream, [])
            out.extend(max(0.0, a - t) for t, a in zip(sorted(times), got, strict=False))
    return out


def pctl(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, round(q / 100 * (len(v) - 1)))], 3)
