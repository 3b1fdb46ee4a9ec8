"""The arrivals board: a page of the cloud dashboard of its own, and its JSON API.

    GET  /arrivals                           the page (cloud/arrivals_board/; all assets local)
    GET  /arrivals/static/{file}
    GET  /api/arrivals?hospital=H            incoming patients of hospital H (all when left out), soonest first
    POST /api/arrivals/ack                   {"hospital", "notice_id", "rev"} -> the ED acknowledges
    GET  /api/arrivals/journey?notice_id=N   the journey's record under the patient's pseudonym (InfluxDB):
                                             every notice revision, the summaries' trend, the alarms

Behind the cloud's guard (``ARRIVALS_RULES``, placed before the fleet API's
rules): reading needs ``view_ward`` (ED nurses, viewers), acknowledging
``act_on_alarms``; both are limited to what the principal's sites cover: a
notice is visible when the principal sees its hospital (an ED's staff have the
hospital id among their sites) or the ambulance's site (the EMS service). An
acknowledgement is audited under the user's name. Ids are checked against fixed
patterns before they reach InfluxQL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from cloud.api import query_rows
from cloud.arrivals import ArrivalsService
from cloud.influx import InfluxWriter
from runtime.security.guard import client_of, principal_of, rule
from runtime.security.jsonbody import read_json
from runtime.security.listener import ListenerSecurity
from runtime.security.roles import Access, Principal

BOARD = Path(__file__).parent / "arrivals_board"
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ARRIVALS_RULES = (
    rule("/arrivals", Access.VIEW_WARD, "GET"),
    rule("/arrivals/static/*", Access.VIEW_WARD, "GET"),
    rule("/api/arrivals", Access.VIEW_WARD, "GET"),
    rule("/api/arrivals/journey", Access.VIEW_WARD, "GET"),
    rule("/api/arrivals/ack", Access.ACT_ON_ALARMS, "POST"),
)


def sees(p: Principal, doc: dict[str, Any]) -> bool:
    return p.sees_site(str(doc.get("hospital", ""))) or p.sees_site(str(doc.get("site", "")))


def _bad(text: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": text}), content_type="application/json")


class ArrivalsApi:
    def __init__(self, service: ArrivalsService, influx: InfluxWriter | None = None,
                 security: ListenerSecurity | None = None) -> None:
        self.service = service
        self.influx = influx
        self.security = security

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/arrivals", self._index)
        app.router.add_get("/api/arrivals", self._list)
        app.router.add_post("/api/arrivals/ack", self._ack)
        app.router.add_get("/api/arrivals/journey", self._journey)
        app.router.add_static("/arrivals/static/", BOARD, show_index=False, follow_symlinks=False)

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(BOARD / "index.html", headers={"Cache-Control": "no-cache"})

    async def _list(self, request: web.Request) -> web.Response:
        hospital = request.query.get("hospital")
        if hospital is not None and not _ID.fullmatch(hospital):
            raise _bad("hospital must match [A-Za-z0-9_-]{1,64}")
        p = principal_of(request)
        visible = [d for d in self.service.board.for_hospital(hospital) if sees(p, d)]
        hospitals = sorted({str(e.doc["hospital"]) for e in self.service.board.entries.values() if sees(p, e.doc)})
        return web.json_response({"hospital": hospital, "hospitals": hospitals, "arrivals": visible})

    async def _ack(self, request: web.Request) -> web.Response:
        p = principal_of(request)
        body = await read_json(request, 4096, 4)
        hospital, nid = str(body.get("hospital", "")), str(body.get("notice_id", ""))
        if not (_ID.fullmatch(hospital) and _ID.fullmatch(nid)):
            raise _bad("hospital and notice_id are ids")
        try:
            rev = int(body["rev"]) if "rev" in body else None
        except (TypeError, ValueError):
            raise _bad("rev must be an integer") from None
        e = self.service.board.entries.get(nid)
        if e is None or not p.sees_site(hospital):
            return web.json_response({"ok": False, "error": "no such notice for that hospital"}, status=404)
        ok = await self.service.acknowledge(hospital, nid, rev, by="ed")
        if self.security is not None:
            self.security.guard.audit.record("pre_arrival_ack", "ok" if ok else "failed", p.name, client_of(request),
                                             notice_id=nid, hospital=hospital)
        if not ok:
            return web.json_response({"ok": False, "error": "no such notice for that hospital"}, status=404)
        return web.json_response({"ok": True, "by": p.name})

    async def _rows(self, q: str) -> list[dict[str, Any]]:
        assert self.influx is not None
        return await query_rows(self.influx, q)

    async def _journey(self, request: web.Request) -> web.Response:
        nid = request.query.get("notice_id", "")
        if not _ID.fullmatch(nid):
            raise _bad("notice_id must be an id")
        if self.influx is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "no database"}), content_type="application/json")
        notices = await self._rows(
            'SELECT "rev", "eta_s", "news2", "open_alarms", "vitals", "patient", "hospital", "site", "state", '
            f"\"complaint\", \"t_alert\" FROM \"notices\" WHERE \"notice_id\" = '{nid}' ORDER BY time ASC")
        if not notices or not sees(principal_of(request), {"hospital": notices[-1].get("hospital"),
                                                            "site": notices[-1].get("site")}):
            raise web.HTTPNotFound(text=json.dumps({"error": "unknown notice"}), content_type="application/json")
        patient = str(notices[-1]["patient"])
        if not re.fullmatch(r"[0-9a-f]{32}", patient):
            return web.json_response({"notice_id": nid, "notices": notices, "vitals": [], "alarms": []})
        since = int(notices[0]["t_alert"]) - 3600 * 10**9  # from an hour before the first alert
        vitals = await self._rows(
            'SELECT "mean", "min", "max", "count", "param", "gateway" FROM "vitals" '
            f"WHERE \"patient\" = '{patient}' AND time >= {since} ORDER BY time ASC LIMIT 5000")
        alarms = await self._rows(
            'SELECT "condition", "priority", "state", "alarm_id", "gateway" FROM "alarms" '
            f"WHERE \"patient\" = '{patient}' AND time >= {since} ORDER BY time ASC LIMIT 500")
        for n in notices:
            n["vitals"] = json.loads(n["vitals"]) if n.get("vitals") else {}
        return web.json_response({"notice_id": nid, "patient": patient, "notices": notices, "vitals": vitals,
                                  "alarms": alarms})
