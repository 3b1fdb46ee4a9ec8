"""The fleet API's learning-loop views (issue 12, slice 5) over a real influxd, behind the real guard (OIDC
issuer and API token): models per gateway, each rollout's stage and outcome, its decision history and the
gateways' latest shadow figures, scoped to the caller's sites."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp

from bench.localservices import Influxd
from cloud.influx import InfluxWriter
from cloud.points import line, to_lines
from tests.cloud_api_fixtures import guarded_fleet_api
from wire.messages import VERSION, ShadowReport, Status


async def write_rollouts(w: InfluxWriter) -> None:
    """Rollout r1 (site stmarys: canary gw-1, then gw-2, rolled back on gw-2's regression) with both gateways'
    latest shadow figures, and r2 of another site; as the ingest and the rollout write them."""
    await w.create_database()
    now = time.time_ns()
    lines = to_lines(Status(v=VERSION, gw="gw-1", seq=1, t=now, online=True, models={"vitals-anomaly": "1.0.0"}),
                     "stmarys", "status")
    for k, (action, stage, gws, reason) in enumerate((
            ("offer", 0, "gw-1", "canary: 1 of 2 gateways"), ("offer", 1, "gw-2", "stage 0 held for 300 s"),
            ("rollback", 1, "gw-1,gw-2", "gw-2: regression, the candidate would have alarmed on 40 bed-windows"))):
        lines.append(line("rollout_decisions", {"rollout": "r1", "model": "vitals-anomaly", "action": action,
                                                "site": "stmarys"},
                          {"version": "1.1.0", "stage": stage, "gateways": gws, "reason": reason,
                           "figures": json.dumps({})}, now - (3 - k) * 1_000_000_000))
    lines.append(line("rollout_decisions", {"rollout": "r2", "model": "vitals-anomaly", "action": "offer",
                                            "site": "elsewhere"},
                      {"version": "1.2.0", "stage": 0, "gateways": "gw-9", "reason": "canary"}, now))
    for gw, cand, state in (("gw-1", 3, "rolled_back"), ("gw-2", 40, "shadow")):
        lines += to_lines(ShadowReport(v=VERSION, gw=gw, seq=1, t=now - 500_000_000, model="vitals-anomaly",
                                       version="1.1.0", active="1.0.0", rollout="r1", state=state, rounds=20,
                                       bed_windows=120, agreement=0.7, cand_alarms=cand, active_alarms=2,
                                       invoke_ms_p50=0.1, invoke_ms_max=0.4), "stmarys", "status")
    assert (await w.write(lines)).ok


async def test_rollouts_with_stage_decisions_and_shadow_figures(tmp_path: Path, influx: Influxd, unique: str) -> None:
    w = InfluxWriter(influx.url, unique)
    await write_rollouts(w)
    async with guarded_fleet_api(w, tmp_path) as api:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api.token}"}) as http:
            r = await http.get(api.url + "/api/rollouts?since=24h")
            assert r.status == 200
            body = await r.json()
            r1 = next(x for x in body if x["rollout"] == "r1")
            assert r1["outcome"] == "rolled_back" and r1["stage"] == 1 and r1["version"] == "1.1.0"
            assert [d["action"] for d in r1["decisions"]] == ["offer", "offer", "rollback"]
            assert r1["decisions"][-1]["gateways"] == ["gw-1", "gw-2"] and "regression" in r1["last_reason"]
            assert r1["shadow"]["gw-2"]["cand_alarms"] == 40 and r1["shadow"]["gw-1"]["state"] == "rolled_back"
            assert {x["rollout"] for x in body} == {"r1", "r2"}  # the service token sees every site
            r = await http.get(api.url + "/api/models")
            assert [m["models"] for m in await r.json() if m["gateway"] == "gw-1"] == [{"vitals-anomaly": "1.0.0"}]
            r = await http.get(api.url + "/api/rollouts?since=forever")
            assert r.status == 400
        async with aiohttp.ClientSession(headers=api.bearer(sites=["stmarys"])) as staff:
            r = await staff.get(api.url + "/api/rollouts?since=24h")
            assert r.status == 200 and [x["rollout"] for x in await r.json()] == ["r1"]  # only their site
        async with aiohttp.ClientSession() as anon:
            r = await anon.get(api.url + "/api/rollouts", allow_redirects=False)
            assert r.status == 401
    await w.close()
