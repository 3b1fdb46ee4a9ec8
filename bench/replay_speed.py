"""``pulsegate bench replay``: replay throughput (rows per wall- and CPU-second) and the stage's per-sample
latency (the gateway's frame-to-alarm path: ClinicalStage.on_sample), on generated ward recordings.

Figures are printed, never asserted. The latency pass times every ``on_sample`` call of a second replay
of the first patients (perf_counter_ns around the call: the timing costs a little itself), and reports
the percentiles over all samples and over the samples whose call raised an alarm.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np


def _ward_csv(path: Path, seed: int, patients: int, hours: float, order: str) -> None:
    from cloud.training.ward_scenarios import generate_ward_set, heldout_ward_params, write_ward_csv

    write_ward_csv(generate_ward_set(seed, patients, replace(heldout_ward_params(), hours=hours)), path, order,
                   seed=seed)


def throughput(csv_path: Path, config: Any, scorer: Any = None) -> dict[str, Any]:
    from clinical.replay import replay

    got: list[dict[str, Any]] = []
    w0, c0 = time.perf_counter(), time.process_time()
    stats = replay(csv_path, got.append, config, scorer)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"rows": stats.rows, "patients": stats.patients, "alarms_raised": stats.alarms_raised,
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "rows_per_s": round(stats.rows / wall) if wall > 0 else None,
            "rows_per_cpu_s": round(stats.rows / cpu) if cpu > 0 else None}


def stage_latency(csv_path: Path, config: Any, max_rows: int) -> dict[str, Any]:
    """Per-sample ``on_sample`` latency over the first ``max_rows`` rows (each patient's own stage)."""
    from clinical import stage as stage_mod
    from clinical.replay import replay

    cls = stage_mod.ClinicalStage
    orig = cls.on_sample
    all_ns: list[int] = []
    alarm_ns: list[int] = []

    def timed(self: Any, s: Any) -> None:
        m = self.manager
        n0 = m.raised_total
        t0 = time.perf_counter_ns()
        orig(self, s)
        dt = time.perf_counter_ns() - t0
        all_ns.append(dt)
        if m.raised_total != n0:
            alarm_ns.append(dt)

    head = csv_path.with_name(csv_path.stem + ".head.csv")
    with csv_path.open() as src, head.open("w") as dst:
        for k, line in enumerate(src):
            if k > max_rows:
                break
            dst.write(line)
    cls.on_sample = timed  # type: ignore[method-assign]
    try:
        replay(head, lambda _r: None, config, None)
    finally:
        cls.on_sample = orig  # type: ignore[method-assign]

    def pct(xs: list[int]) -> dict[str, float | int | None]:
        if not xs:
            return {"n": 0, "p50_us": None, "p99_us": None, "max_us": None}
        a = np.asarray(xs) / 1000.0
        return {"n": len(xs), "p50_us": round(float(np.percentile(a, 50)), 2),
                "p99_us": round(float(np.percentile(a, 99)), 2), "max_us": round(float(a.max()), 1)}

    return {"all_samples": pct(all_ns), "raising_samples": pct(alarm_ns)}


def run(*, csv: Path | None, seed: int, patients: int, hours: float, order: str, config: Any,
        scorer: Any = None, latency_rows: int = 200_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = csv
        if path is None:
            path = Path(tmp) / "ward.csv"
            _ward_csv(path, seed, patients, hours, order)
        out: dict[str, Any] = {"csv": str(csv) if csv else f"generated: seed {seed}, {patients} patients x "
                               f"{hours:g} h, {order}"}
        out["throughput"] = throughput(path, config, scorer)
        out["stage_on_sample"] = stage_latency(path, config, latency_rows) if latency_rows > 0 else None
    return out


def table(r: dict[str, Any]) -> str:
    t = r["throughput"]
    lines = [f"replay of {r['csv']}: {t['rows']} rows, {t['patients']} patients, {t['alarms_raised']} alarms",
             f"  {t['rows_per_s']} rows/s (wall {t['wall_s']} s), {t['rows_per_cpu_s']} rows per CPU-second "
             f"(CPU {t['cpu_s']} s)"]
    lat = r.get("stage_on_sample")
    if lat:
        for k in ("all_samples", "raising_samples"):
            d = lat[k]
            lines.append(f"  stage on_sample, {k.replace('_', ' ')}: n {d['n']}, p50 {d['p50_us']} us, "
                         f"p99 {d['p99_us']} us, max {d['max_us']} us")
    return "\n".join(lines)

