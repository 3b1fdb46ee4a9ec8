"""The cloud's REST API and fleet dashboard (aiohttp), read-only over InfluxDB.

    GET /                        the dashboard (cloud/dashboard/index.html; all assets local)
    GET /api/gateways            last status per gateway: online, backlog, oldest unsent, software, models
    GET /api/alarms?since=6h     alarm state changes, newest first (at most 500)
    GET /api/patients            pseudonymous patients with data, with their gateway and bed
    GET /api/vitals?patient=P&param=spo2&since=6h   the per-interval summaries of one patient
    GET /api/ward, /api/burden, /api/scores, /api/markers   see cloud/api_views.py
    GET /api/models, /api/rollouts   models per gateway, rollouts, shadow figures, decisions (cloud/api_rollouts.py)

Every route needs a login (OIDC session or bearer JWT) or an API token with
the ``view_fleet`` permission (``API_RULES``), and every query is limited to
the caller's sites (cloud/site_scope.py). Query parameters are checked against
fixed patterns before they reach InfluxQL (no string from a request is ever
spliced in unchecked). Patients are
only ever pseudonyms here: the cloud never sees a patient reference.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from clinical.parameters import PARAMETERS
from cloud.api_rollouts import RolloutViews
from cloud.api_views import FleetViews
from cloud.influx import InfluxError, InfluxWriter
from cloud.site_scope import and_sites
from runtime.logs import get_logger
from runtime.security.guard import principal_of, rule
from runtime.security.roles import Access

log = get_logger("cloud.api")
DASHBOARD = Path(__file__).parent / "dashboard"
SINCE = {"15m", "1h", "6h", "24h", "7d", "30d"}
_PSEUDONYM = re.compile(r"[0-9a-f]{32}")
STALE_S = 60.0  # a gateway whose last status is older than this is shown as "stale"


API_RULES = (
    rule("/", Access.VIEW_FLEET, "GET"),
    rule("/static/*", Access.VIEW_FLEET, "GET"),
    rule("/api/*", Access.VIEW_FLEET, "GET"),
)


async def query_rows(influx: InfluxWriter, q: str) -> list[dict[str, Any]]:
    """Rows of an InfluxQL query for an API answer: none while the database does not exist yet, a 503
    (no database error text) when InfluxDB fails."""
    try:
        return await influx.rows(q)
    except InfluxError as exc:
        if "database not found" in str(exc):
            return []
        log.warning("influx_query_failed", error=str(exc)[:300])
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "database unavailable"}), content_type="application/json"
        ) from None


class FleetApi:
    def __init__(self, influx: InfluxWriter) -> None:
        self.influx = influx
        self.requests = 0
        self.errors = 0

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/", self._index)
        app.router.add_get("/api/gateways", self._gateways)
        app.router.add_get("/api/alarms", self._alarms)
        app.router.add_get("/api/patients", self._patients)
        app.router.add_get("/api/vitals", self._vitals)
        app.router.add_static("/static/", DASHBOARD, show_index=False, follow_symlinks=False)
        FleetViews(self).setup(app)
        RolloutViews(self).setup(app)

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(DASHBOARD / "index.html")

    async def _rows(self, q: str) -> list[dict[str, Any]]:
        self.requests += 1
        try:
            return await query_rows(self.influx, q)
        except web.HTTPServiceUnavailable:
            self.errors += 1
            raise

    @staticmethod
    def _since(request: web.Request, default: str = "6h") -> str:
        since = request.query.get("since", default)
        if since not in SINCE:
            raise web.HTTPBadRequest(text=json.dumps({"error": f"since must be one of {sorted(SINCE)}"}),
                                     content_type="application/json")
        return since

    async def _gateways(self, request: web.Request) -> web.Response:
        # the newest status point per gateway (several last() selectors would lose the point's time)
        scope = and_sites(principal_of(request))
        rows = await self._rows(
            'SELECT "online", "backlog", "oldest_unsent_s", "unreceipted", "oldest_unreceipted_s", "software", '
            f'"models" FROM "status" {scope} '
            'GROUP BY "gateway", "site" ORDER BY time DESC LIMIT 1'
        )
        now_ns = time.time_ns()
        out = []
        for r in rows:
            age = (now_ns - int(r["time"])) / 1e9
            online = bool(r.get("online")) and age < STALE_S
            out.append({
                "gateway": r.get("gateway"), "site": r.get("site"), "online": online,
                "state": "online" if online else ("offline" if r.get("online") is False else "stale"),
                "last_status_age_s": round(age, 1), "backlog": r.get("backlog"),
                "oldest_unsent_s": r.get("oldest_unsent_s"), "software": r.get("software"),
                "unreceipted": r.get("unreceipted"), "oldest_unreceipted_s": r.get("oldest_unreceipted_s"),
                "models": json.loads(r["models"]) if r.get("models") else {},
            })
        out.sort(key=lambda g: (g["site"] or "", g["gateway"] or ""))
        return web.json_response(out)

    async def _alarms(self, request: web.Request) -> web.Response:
        since = self._since(request)
        # tags selected as columns, no GROUP BY: LIMIT then bounds the whole answer, not each series
        scope = and_sites(principal_of(request), f"time > now() - {since}")
        rows = await self._rows(
            'SELECT "condition", "score", "value", "by", "changed_ns", "latency_total_ms", "gateway", "bed", '
            '"patient", "alarm_id", "state", "priority", "kind", "source" FROM "alarms" '
            f"{scope} ORDER BY time DESC LIMIT 500"
        )
        for r in rows:  # the time of this state change (points are keyed by the raise time)
            r["changed"] = r.pop("changed_ns", None) or r["time"]
        rows.sort(key=lambda r: -int(r["changed"]))
        return web.json_response(rows[:500])

    async def _patients(self, request: web.Request) -> web.Response:
        scope = and_sites(principal_of(request), "time > now() - 30d")
        rows = await self._rows(f'SELECT last("count") FROM "vitals" {scope} GROUP BY "patient", "gateway", "bed"')
        out = [{"patient": r["patient"], "gateway": r.get("gateway"), "bed": r.get("bed"), "last": r["time"]}
               for r in rows if r.get("patient")]
        out.sort(key=lambda p: -int(p["last"]))
        return web.json_response(out)

    async def _vitals(self, request: web.Request) -> web.Response:
        patient = request.query.get("patient", "")
        param = request.query.get("param", "heart_rate")
        if not _PSEUDONYM.fullmatch(patient):
            raise web.HTTPBadRequest(text=json.dumps({"error": "patient must be a 32-hex pseudonym"}),
                                     content_type="application/json")
        if param not in PARAMETERS:
            raise web.HTTPBadRequest(text=json.dumps({"error": f"unknown param {param[:40]!r}"}),
                                     content_type="application/json")
        since = self._since(request)
        scope = and_sites(principal_of(request),
                          f"\"patient\" = '{patient}' AND \"param\" = '{param}' AND time > now() - {since}")
        rows = await self._rows(f'SELECT "mean", "min", "max", "count" FROM "vitals" {scope} ORDER BY time ASC')
        return web.json_response({"patient": patient, "param": param, "unit": PARAMETERS[param].unit,
                                  "points": [[r["time"] // 1_000_000, r["mean"], r["min"], r["max"]] for r in rows]})
