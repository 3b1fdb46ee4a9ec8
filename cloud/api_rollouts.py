"""The learning loop's fleet views: models per gateway, rollouts with their stage, shadow figures, decisions.

    GET /api/models                  the active model versions each gateway reports (status stream)
    GET /api/rollouts?since=7d       every rollout: model, version, stage, outcome, its decision history
                                     (cloud/rollout.py, measurement rollout_decisions) and each gateway's
                                     latest shadow figures (measurement shadow_reports)

Behind the same guard and permission as the rest of ``/api/*`` (``view_fleet``), every query limited to the
caller's sites; ``since`` is one of the API's fixed ranges.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cloud.site_scope import and_sites
from runtime.security.guard import principal_of

if TYPE_CHECKING:
    from cloud.api import FleetApi

FIGURES = ("rounds", "bed_windows", "agreement", "cand_alarms", "active_alarms", "invoke_ms_p50", "invoke_ms_max",
           "errors", "invalid", "cand_beds", "active_beds", "both_beds")


class RolloutViews:
    def __init__(self, api: FleetApi) -> None:
        self.api = api

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/api/models", self.models)
        app.router.add_get("/api/rollouts", self.rollouts)

    async def models(self, request: web.Request) -> web.Response:
        scope = and_sites(principal_of(request))
        rows = await self.api._rows(f'SELECT "models" FROM "status" {scope} GROUP BY "gateway", "site" '
                                    'ORDER BY time DESC LIMIT 1')
        out = [{"gateway": r.get("gateway"), "site": r.get("site"), "as_of": r["time"],
                "models": json.loads(r["models"]) if r.get("models") else {}} for r in rows]
        out.sort(key=lambda g: (g["site"] or "", g["gateway"] or ""))
        return web.json_response(out)

    async def rollouts(self, request: web.Request) -> web.Response:
        since = self.api._since(request, "7d")
        principal = principal_of(request)
        decisions = await self.api._rows(
            'SELECT "version", "stage", "gateways", "reason", "figures", "rollout", "model", "action", "site" '
            f'FROM "rollout_decisions" {and_sites(principal, f"time > now() - {since}")} ORDER BY time ASC')
        reports = await self.api._rows(
            'SELECT "state", "active", "reason", ' + ", ".join(f'"{f}"' for f in FIGURES) +
            f' FROM "shadow_reports" {and_sites(principal, f"time > now() - {since}")} '
            'GROUP BY "rollout", "gateway" ORDER BY time DESC LIMIT 1')
        by: dict[str, dict[str, Any]] = {}
        for d in decisions:
            r = by.setdefault(d["rollout"], {"rollout": d["rollout"], "model": d.get("model"),
                                             "version": d.get("version"), "site": d.get("site"), "decisions": [],
                                             "shadow": {}})
            r["decisions"].append({"time": d["time"], "action": d.get("action"), "stage": d.get("stage"),
                                   "gateways": (d.get("gateways") or "").split(",") if d.get("gateways") else [],
                                   "reason": d.get("reason"),
                                   "figures": json.loads(d["figures"]) if d.get("figures") else {}})
        for rep in reports:
            owner = by.get(rep.get("rollout") or "")
            if owner is not None:
                owner["shadow"][rep.get("gateway")] = {"time": rep["time"], "state": rep.get("state"),
                                                   "active": rep.get("active"), "reason": rep.get("reason"),
                                                   **{f: rep.get(f) for f in FIGURES}}
        out = []
        for r in by.values():
            last = r["decisions"][-1]
            r["stage"] = last["stage"]
            r["outcome"] = {"promote": "promoted", "rollback": "rolled_back"}.get(last["action"], "running")
            r["last_reason"] = last["reason"]
            out.append(r)
        out.sort(key=lambda r: -int(r["decisions"][-1]["time"]))
        return web.json_response(out)
