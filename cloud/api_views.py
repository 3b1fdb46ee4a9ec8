"""The fleet dashboard's read-only views over InfluxDB: ward, alarm burden, scores, alarm markers.

    GET /api/ward?gateway=G          per bed: latest vitals, NEWS2, open alarms by priority, data age
    GET /api/burden?since=24h        alarms raised per bed-day, by priority and by source
    GET /api/scores?patient=P&since=6h     NEWS2 and anomaly score of one patient
    GET /api/markers?patient=P&since=6h    that patient's alarm state changes (chart markers)

``ROUTES`` lists them (method, path, handler name); they sit behind the same
guard as the rest of /api/* (``API_RULES``: view_fleet) and every query is
limited to the caller's sites (cloud/site_scope.py). Every request string is
checked against a fixed pattern before it reaches InfluxQL.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from aiohttp import web

from clinical.parameters import PARAMETERS
from cloud.site_scope import and_sites
from runtime.security.guard import principal_of

if TYPE_CHECKING:
    from cloud.api import FleetApi

_GATEWAY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PSEUDONYM = re.compile(r"[0-9a-f]{32}")
FRESH_S = 180.0  # a bed whose newest summary started longer ago than this is shown as stale
ROUTES = (
    ("GET", "/api/ward", "ward"),
    ("GET", "/api/burden", "burden"),
    ("GET", "/api/scores", "scores"),
    ("GET", "/api/markers", "markers"),
)


def _bad(text: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": text}), content_type="application/json")


class FleetViews:
    def __init__(self, api: FleetApi) -> None:
        self.api = api

    def setup(self, app: web.Application) -> None:
        for method, path, name in ROUTES:
            app.router.add_route(method, path, getattr(self, name))

    @staticmethod
    def _patient(request: web.Request) -> str:
        patient = request.query.get("patient", "")
        if not _PSEUDONYM.fullmatch(patient):
            raise _bad("patient must be a 32-hex pseudonym")
        return patient

    async def ward(self, request: web.Request) -> web.Response:
        gateway = request.query.get("gateway", "")
        if gateway and not _GATEWAY.fullmatch(gateway):
            raise _bad("gateway must match [A-Za-z0-9_.-]{1,64}")
        gw = f" AND \"gateway\" = '{gateway}'" if gateway else ""
        who = principal_of(request)
        vitals = await self.api._rows('SELECT last("mean") AS "value" FROM "vitals" '
                                      f'{and_sites(who, "time > now() - 1h" + gw)} '
                                      'GROUP BY "gateway", "bed", "patient", "param"')
        scores = await self.api._rows('SELECT last("news2") AS "news2" FROM "scores" '
                                      f'{and_sites(who, "time > now() - 1h" + gw)} GROUP BY "gateway", "bed"')
        alarms = await self.api._rows('SELECT max("changed_ns") AS "changed", "state", "priority", "bed" FROM "alarms" '
                                      f'{and_sites(who, "time > now() - 24h" + gw)} GROUP BY "gateway", "alarm_id"')
        now_ns = time.time_ns()
        beds: dict[tuple[str, str], dict[str, Any]] = {}

        def bed(gateway: str, name: str) -> dict[str, Any]:
            return beds.setdefault((gateway, name), {"gateway": gateway, "bed": name, "patient": "", "vitals": {},
                                                     "news2": None, "open_alarms": {}, "age_s": None})

        for r in vitals:
            b = bed(r.get("gateway", ""), r.get("bed", ""))
            param = r.get("param", "")
            unit = PARAMETERS[param].unit if param in PARAMETERS else ""
            b["vitals"][param] = {"value": r.get("value"), "unit": unit, "t": int(r["time"]) // 1_000_000}
            age = (now_ns - int(r["time"])) / 1e9
            b["age_s"] = round(age if b["age_s"] is None else min(b["age_s"], age), 1)
            b["patient"] = r.get("patient") or b["patient"]
        for r in scores:
            bed(r.get("gateway", ""), r.get("bed", ""))["news2"] = r.get("news2")
        for r in alarms:
            if r.get("state") != "cleared" and r.get("bed"):
                counts = bed(r.get("gateway", ""), r["bed"])["open_alarms"]
                counts[r.get("priority", "")] = counts.get(r.get("priority", ""), 0) + 1
        out = sorted(beds.values(), key=lambda b: (b["gateway"], b["bed"]))
        for b in out:
            b["fresh"] = b["age_s"] is not None and b["age_s"] < FRESH_S
        return web.json_response(out)

    async def burden(self, request: web.Request) -> web.Response:
        since = self.api._since(request, "24h")
        who = principal_of(request)
        minutes = await self.api._rows(
            'SELECT count("n") AS "bed_minutes" FROM (SELECT max("count") AS "n" FROM "vitals" '
            f'{and_sites(who, f"time > now() - {since}")} GROUP BY time(1m), "gateway", "bed")')
        bed_days = sum(int(r.get("bed_minutes") or 0) for r in minutes) / 1440.0
        out: dict[str, Any] = {"since": since, "bed_days": round(bed_days, 4)}
        for by in ("priority", "source"):
            cond = and_sites(who, f"\"state\" = 'raised' AND time > now() - {since}")
            rows = await self.api._rows(f'SELECT count("condition") AS "raised" FROM "alarms" {cond} GROUP BY "{by}"')
            counts: dict[str, int] = defaultdict(int)
            for r in rows:
                counts[r.get(by) or "?"] += int(r.get("raised") or 0)
            out[f"by_{by}"] = {k: {"raised": n, "per_bed_day": round(n / bed_days, 2) if bed_days else None}
                               for k, n in sorted(counts.items())}
        return web.json_response(out)

    async def scores(self, request: web.Request) -> web.Response:
        patient = self._patient(request)
        since = self.api._since(request)
        cond = and_sites(principal_of(request), f"\"patient\" = '{patient}' AND time > now() - {since}")
        rows = await self.api._rows(f'SELECT "news2", "anomaly" FROM "scores" {cond} ORDER BY time ASC')
        return web.json_response({"patient": patient,
                                  "points": [[r["time"] // 1_000_000, r.get("news2"), r.get("anomaly")] for r in rows]})

    async def markers(self, request: web.Request) -> web.Response:
        patient = self._patient(request)
        since = self.api._since(request)
        cond = and_sites(principal_of(request), f"\"patient\" = '{patient}' AND time > now() - {since}")
        rows = await self.api._rows('SELECT "condition", "changed_ns", "state", "priority", "source", "param" '
                                    f'FROM "alarms" {cond} ORDER BY time ASC LIMIT 500')
        out: list[dict[str, Any]] = [
            {"t": int(r.get("changed_ns") or r["time"]) // 1_000_000, "state": r.get("state"),
             "priority": r.get("priority"), "condition": r.get("condition"), "source": r.get("source"),
             "param": r.get("param")} for r in rows]
        out.sort(key=lambda m: int(m["t"]))
        return web.json_response(out)
