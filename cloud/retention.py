"""Retention policies and hourly rollups, created by the ingest at start if missing.

* ``raw`` (the database's DEFAULT policy): every point the ingest writes, kept
  ``raw_days`` days.
* ``rollup``: hourly rollups kept ``rollup_days`` (0 = forever), filled by
  InfluxDB continuous queries ``cq_<measurement>_<interval>`` from ``raw``:
  ``vitals_1h`` (count = sum of counts, min of mins, max of maxes, mean of
  means, invalid = sum) and ``scores_1h`` (max NEWS2, max and mean anomaly),
  grouped by every tag (``GROUP BY time(1h), *``).

Everything is idempotent: existing databases, policies and queries are left as
they are (a changed duration is applied with ALTER).
"""

from __future__ import annotations

from cloud.influx import InfluxConfig, InfluxWriter
from runtime.logs import get_logger

log = get_logger("cloud.retention")

RAW_RP = "raw"
ROLLUP_RP = "rollup"

ROLLUPS = {
    "vitals": "SUM(count) AS count, MIN(min) AS min, MAX(max) AS max, MEAN(mean) AS mean, SUM(invalid) AS invalid",
    "scores": "MAX(news2) AS news2_max, MAX(anomaly) AS anomaly_max, MEAN(anomaly) AS anomaly_mean",
}


def rollup_select(db: str, measurement: str, interval: str = "1h") -> str:
    """The SELECT ... INTO of one rollup (also used by tests to run it on demand)."""
    return (
        f'SELECT {ROLLUPS[measurement]} INTO "{db}"."{ROLLUP_RP}"."{measurement}_{interval}" '
        f'FROM "{db}"."{RAW_RP}"."{measurement}" GROUP BY time({interval}), *'
    )


def _duration(days: int) -> str:
    return "INF" if days <= 0 else f"{days}d"


async def ensure_schema(influx: InfluxWriter, cfg: InfluxConfig) -> list[str]:
    """Create database, RPs and CQs that are missing; returns the statements it ran."""
    db = influx.database
    ran: list[str] = []

    async def run(q: str) -> None:
        await influx.query(q, method="POST", database=db)
        ran.append(q)

    await influx.query(f'CREATE DATABASE "{db}"', method="POST", database="")
    res = await influx.query(f'SHOW RETENTION POLICIES ON "{db}"')
    existing = {row[0]: row for s in res[0].get("series", []) for row in s["values"]}
    for name, days, default in ((RAW_RP, cfg.raw_days, True), (ROLLUP_RP, cfg.rollup_days, False)):
        dur = _duration(days)
        suffix = " DEFAULT" if default else ""
        if name not in existing:
            await run(f'CREATE RETENTION POLICY "{name}" ON "{db}" DURATION {dur} REPLICATION 1{suffix}')
        elif default and not existing[name][-1]:
            await run(f'ALTER RETENTION POLICY "{name}" ON "{db}" DURATION {dur}{suffix}')
    res = await influx.query("SHOW CONTINUOUS QUERIES")
    have = {row[0] for s in res[0].get("series", []) if s.get("name") == db for row in s.get("values", [])}
    for meas in ROLLUPS:
        cq = f"cq_{meas}_{cfg.rollup_interval}"
        if cq not in have:
            await run(f'CREATE CONTINUOUS QUERY "{cq}" ON "{db}" BEGIN '
                      f"{rollup_select(db, meas, cfg.rollup_interval)} END")
    if ran:
        log.info("influx_schema_created", database=db, statements=len(ran))
    return ran
