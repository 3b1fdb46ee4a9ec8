"""The cloud REST API and fleet dashboard over a real InfluxDB, and in real headless Chromium, behind the guard:
staff log in through a real local OIDC issuer (tests/oidc_issuer.py), machines with API tokens; every route
refuses anonymous and wrong-role callers, and a user sees only their own sites."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bench.localservices import Influxd
from cloud.influx import InfluxWriter
from cloud.points import to_lines
from tests.cloud_api_fixtures import Api, guarded_fleet_api
from tests.oidc_issuer import OidcIssuer
from wire.messages import Alarm, Status, Summary, SummaryItem

pytestmark = pytest.mark.integration
P1 = "ab" * 16
CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    raise RuntimeError("chromium is not installed (apt-get install -y chromium; make test does this)")
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture
async def api(influx: Influxd, unique: str, tmp_path: Path) -> AsyncIterator[Api]:
    writer = InfluxWriter(influx.url, unique)
    await writer.create_database()
    now = time.time_ns()
    lines: list[str] = []
    for i in range(5):
        t = now - (5 - i) * 60 * 10**9
        s = Summary(v=1, gw="ward7-gw1", seq=i, interval_s=60.0,
                    items=[SummaryItem("bed-02", P1, "spo2", t, 60, 90.0 - i, 96.0 - i, 93.0 - i, 92.0 - i)])
        lines += to_lines(s, "stmarys", "summaries")
    lines += to_lines(Status(v=2, gw="ward7-gw1", seq=0, t=now, online=True, backlog=3, oldest_unsent_s=1.5,
                             software="pulsegate 0.1.0", models={"vitals-anomaly": "1.0.0"}, unreceipted=2,
                             oldest_unreceipted_s=0.75), "stmarys", "status")
    lines += to_lines(Status(v=1, gw="amb-12", seq=0, t=now - 10**9, online=False), "ambulance", "status")
    lines += to_lines(Alarm(v=1, gw="ward7-gw1", seq=9, alarm_id="a-1", bed="bed-02", patient=P1, t=now - 30 * 10**9,
                            state="raised", priority="high", kind="physiological", source="threshold",
                            condition="spo2_low", value=85.0, param="spo2", latency_ms={"total": 1.25},
                            changed=now - 20 * 10**9),
                      "stmarys", "alarms")
    resp = await writer.write(lines)
    assert resp.ok, resp.text
    async with guarded_fleet_api(writer, tmp_path) as served:
        yield served
    await writer.close()


async def test_api_answers_from_influx_and_rejects_bad_parameters(api: Api) -> None:
    async with aiohttp.ClientSession(headers=api.bearer()) as http:
        gws = await (await http.get(f"{api}/api/gateways")).json()
        by_id = {g["gateway"]: g for g in gws}
        assert by_id["ward7-gw1"]["state"] == "online" and by_id["ward7-gw1"]["backlog"] == 3
        assert by_id["ward7-gw1"]["models"] == {"vitals-anomaly": "1.0.0"}
        assert by_id["ward7-gw1"]["unreceipted"] == 2 and by_id["ward7-gw1"]["oldest_unreceipted_s"] == 0.75
        assert by_id["amb-12"]["unreceipted"] is None  # a v1 gateway has no receipts
        assert by_id["amb-12"]["state"] == "offline" and by_id["amb-12"]["site"] == "ambulance"
        alarms = await (await http.get(f"{api}/api/alarms?since=1h")).json()
        assert [(a["alarm_id"], a["priority"], a["condition"]) for a in alarms] == [("a-1", "high", "spo2_low")]
        assert alarms[0]["changed"] == alarms[0]["time"] + 10 * 10**9  # state-change time, not the raise time
        patients = await (await http.get(f"{api}/api/patients")).json()
        assert patients[0]["patient"] == P1 and patients[0]["bed"] == "bed-02"
        vitals = await (await http.get(f"{api}/api/vitals?patient={P1}&param=spo2&since=1h")).json()
        assert [p[1] for p in vitals["points"]] == [93.0, 92.0, 91.0, 90.0, 89.0] and vitals["unit"] == "%"
        for bad in (f"patient={P1}'%20OR%201=1&param=spo2", f"patient={P1}&param=colour", f"patient={P1}&since=1y",
                    f"patient={P1}%0A&param=spo2"):
            r = await http.get(f"{api}/api/vitals?{bad}")
            assert r.status == 400, bad


async def test_every_route_refuses_anonymous_and_wrong_role_and_scopes_sites(api: Api) -> None:
    routes = ["/", "/static/dashboard.js", "/api/gateways", "/api/alarms", "/api/patients",
              f"/api/vitals?patient={P1}&param=spo2", "/api/not-a-route"]
    async with aiohttp.ClientSession() as anon:
        for path in routes:
            r = await anon.get(api.url + path, allow_redirects=False)
            assert r.status in (302, 401), path
        r = await anon.get(api.url + "/", headers={"Accept": "text/html"}, allow_redirects=False)
        assert r.status == 302 and r.headers["Location"].startswith("/login")
    async with aiohttp.ClientSession(headers=api.bearer(roles=["clinician"])) as wrong:
        for path in routes:
            assert (await wrong.get(api.url + path)).status == 403, path
    async with aiohttp.ClientSession(headers=api.bearer(sites=["stmarys"])) as http:
        gws = await (await http.get(f"{api}/api/gateways")).json()
        assert {g["gateway"] for g in gws} == {"ward7-gw1"}  # not the other site's ambulance
    async with aiohttp.ClientSession(headers=api.bearer(sites=["ambulance"])) as http:
        assert await (await http.get(f"{api}/api/alarms?since=1h")).json() == []
        assert await (await http.get(f"{api}/api/patients")).json() == []
        vitals = await (await http.get(f"{api}/api/vitals?patient={P1}&param=spo2&since=1h")).json()
        assert vitals["points"] == []
    other = OidcIssuer()  # a real issuer, but not the configured one
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer " + other.token(
            roles=["admin"], sites=["*"])}) as forged:
        assert (await forged.get(f"{api}/api/gateways")).status == 401
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api.token}"}) as machine:
        gws = await (await machine.get(f"{api}/api/gateways")).json()
        assert {g["gateway"] for g in gws} == {"ward7-gw1", "amb-12"}


async def test_dashboard_in_chromium_shows_gateways_alarms_and_trend(api: Api, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(api.url + "/")  # not logged in: the login page, then the organisation's login
            await page.wait_for_url("**/login?next=/", timeout=15000)
            await page.click("#oidc-link")
            await page.wait_for_url(api.url + "/", timeout=15000)
            await page.wait_for_selector('#gateways tr[data-gateway="ward7-gw1"] td.online', timeout=15000)
            assert "offline" in await page.inner_text('#gateways tr[data-gateway="amb-12"]')
            await page.wait_for_selector("#alarms tr.high", timeout=15000)
            assert "spo2_low" in await page.inner_text("#alarms")
            await page.wait_for_selector("#chart-spo2 .uplot canvas", timeout=15000)  # uPlot (test_dashboard_v2.py)
            await page.screenshot(path=str(tmp_path / "dashboard.png"))
        finally:
            await browser.close()
