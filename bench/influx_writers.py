"""`pulsegate bench influx-writers`: the two v2 writers against the same server, same points.

Both write the same ``vitals`` points (5,000 lines per request, sequential, as
the ingest's writer task does) to ``/api/v2/write`` with a token, on the same
server: victoria-metrics behind vmauth (bench/v2services.py: no InfluxDB 2.x
is installable here). Reported: points/s and the client process's CPU time per
100,000 points (what an ingest worker spends on writing), for

* ``http``: cloud.influx.InfluxWriter (one aiohttp POST per batch), and
* ``influxdb-client``: cloud.influx_client.InfluxClientWriter (WriteApiAsync).

For reference the HTTP writer is also run against influxd 1.6.7's ``/write``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.localservices import Influxd
from bench.v2services import V2WriteServer
from cloud.influx import InfluxWriter, LineWriter
from cloud.influx_client import InfluxClientWriter


def _batches(n_points: int, batch: int, t0: int, tag: str) -> list[list[str]]:
    lines = [f"vitals,gateway={tag},site=s1,stream=summaries,bed=b{i % 32},patient=p{i % 32},param=hr{i % 8} "
             f"count=60i,min=60,max=90,mean=75.5,last=77,invalid=0i,interval_s=60,seq={i // 256}i {t0 + i}"
             for i in range(n_points)]
    return [lines[i : i + batch] for i in range(0, len(lines), batch)]


async def _run(writer: LineWriter, batches: list[list[str]]) -> dict[str, Any]:
    assert (await writer.write(batches[0][:1])).ok  # connect and warm up outside the timing
    cpu0, t0 = time.process_time(), time.perf_counter()
    for b in batches:
        resp = await writer.write(b)
        if not resp.ok:
            raise RuntimeError(f"write failed: {resp.status} {resp.body[:200]}")
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await writer.close()
    n = sum(len(b) for b in batches)
    return {"points_per_s": round(n / wall), "client_cpu_s_per_100k_points": round(cpu / n * 1e5, 3)}


async def bench_writers(n_points: int = 200_000, batch: int = 5000, repeats: int = 3) -> dict[str, Any]:
    t0 = (time.time_ns() // 10**9 - 3600) * 10**9
    result: dict[str, Any] = {"points": n_points, "batch_points": batch, "repeats": repeats,
                              "server": "victoria-metrics 1.79 /api/v2/write behind vmauth (token)"}
    with tempfile.TemporaryDirectory(prefix="pg-bench-writers-") as d:
        tmp = Path(d)
        runs: dict[str, list[dict[str, Any]]] = {"http": [], "influxdb-client": [], "http_v1_influxd": []}
        with V2WriteServer(tmp / "v2").start() as srv:
            for r in range(repeats):  # interleaved, so that the neighbours' load hits both alike
                runs["http"].append(await _run(InfluxWriter(srv.url, "pg", api="v2", org="o", bucket="pg",
                                                            token=srv.token), _batches(n_points, batch, t0, f"h{r}")))
                runs["influxdb-client"].append(await _run(InfluxClientWriter(srv.url, "o", "pg", srv.token),
                                                          _batches(n_points, batch, t0, f"c{r}")))
        idb = Influxd(tmp / "influx").start()
        try:
            w = InfluxWriter(idb.url, "bench")
            await w.create_database()
            for r in range(repeats):
                runs["http_v1_influxd"].append(await _run(InfluxWriter(idb.url, "bench"),
                                                          _batches(n_points, batch, t0, f"v{r}")))
            await w.close()
        finally:
            idb.stop()
    for name, rs in runs.items():
        best = max(rs, key=lambda x: x["points_per_s"])
        result[name] = {"points_per_s_best": best["points_per_s"],
                        "points_per_s_runs": [x["points_per_s"] for x in rs],
                        "client_cpu_s_per_100k_points": min(x["client_cpu_s_per_100k_points"] for x in rs)}
    return result
