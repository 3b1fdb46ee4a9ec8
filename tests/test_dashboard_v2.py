"""The fleet dashboard v2 (cloud/dashboard, uPlot vendored from npm) over a real InfluxDB, in real headless
Chromium: ward view, gateway health, model versions, alarm burden per bed-day, per-patient trends with NEWS2
and alarm markers. No console errors, no failed requests, nothing fetched from outside the daemon; the
screenshots are kept in tests/artifacts/ (gitignored)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bench.localservices import Influxd
from cloud.api import DASHBOARD
from tests.cloud_api_fixtures import Api, guarded_fleet_api
from tests.interop_fixtures import PATIENTS, ward_database

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
DETERIORATING = PATIENTS[("ward7-gw1", "bed-02")]
if not os.path.exists(CHROMIUM):
    raise RuntimeError("chromium is not installed (apt-get install -y chromium; make test does this)")


@pytest.fixture
async def api(influx: Influxd, unique: str, tmp_path: Path) -> AsyncIterator[Api]:
    async for writer in ward_database(influx.url, unique):
        async with guarded_fleet_api(writer, tmp_path) as served:
            yield served


async def test_views_answer_from_influx_and_refuse_bad_parameters(api: Api) -> None:
    async with aiohttp.ClientSession(headers=api.bearer()) as http:
        ward = await (await http.get(f"{api}/api/ward")).json()
        beds = {(b["gateway"], b["bed"]): b for b in ward}
        assert set(beds) == set(PATIENTS)
        b2 = beds[("ward7-gw1", "bed-02")]
        assert b2["patient"] == DETERIORATING and b2["fresh"] and b2["news2"] >= 6
        assert b2["vitals"]["spo2"]["unit"] == "%" and 85 < b2["vitals"]["spo2"]["value"] < 92
        assert b2["open_alarms"] == {"medium": 1}  # a-1 was cleared, a-2 is still open
        only = await (await http.get(f"{api}/api/ward?gateway=amb-12")).json()
        assert [b["bed"] for b in only] == ["stretcher"]
        burden = await (await http.get(f"{api}/api/burden?since=24h")).json()
        # 3 beds x 12 minutes of data = 36 bed-minutes; 3 alarms raised (one per priority)
        assert burden["bed_days"] == pytest.approx(36 / 1440, abs=2 / 1440)
        assert {k: v["raised"] for k, v in burden["by_priority"].items()} == {"high": 1, "medium": 1, "low": 1}
        assert burden["by_source"]["threshold"]["per_bed_day"] == pytest.approx(1 / burden["bed_days"], rel=0.01)
        scores = await (await http.get(f"{api}/api/scores?patient={DETERIORATING}&since=1h")).json()
        assert len(scores["points"]) == 12 and scores["points"][-1][1] >= 6
        marks = await (await http.get(f"{api}/api/markers?patient={DETERIORATING}&since=1h")).json()
        assert [(m["condition"], m["state"]) for m in marks if m["condition"] == "spo2_low"] == [
            ("spo2_low", "raised"), ("spo2_low", "acknowledged"), ("spo2_low", "cleared")]
        for bad in ("ward?gateway=a'b", "ward?gateway=" + "x" * 65, "burden?since=1y", "scores?patient=abc",
                    f"markers?patient={DETERIORATING}&since=2h", f"scores?patient={DETERIORATING}%0A"):
            r = await http.get(f"{api}/api/{bad}")
            assert r.status == 400, bad
            assert "error" in await r.json()


async def test_views_need_a_login_and_keep_to_the_callers_sites(api: Api) -> None:
    routes = ["/api/ward", "/api/burden", f"/api/scores?patient={DETERIORATING}", f"/api/markers?patient={DETERIORATING}"]
    async with aiohttp.ClientSession() as anon:
        for path in routes:
            assert (await anon.get(api.url + path, allow_redirects=False)).status == 401, path
    async with aiohttp.ClientSession(headers=api.bearer(roles=["clinician"])) as wrong:
        for path in routes:
            assert (await wrong.get(api.url + path)).status == 403, path
    async with aiohttp.ClientSession(headers=api.bearer(sites=["ambulance"])) as http:
        ward = await (await http.get(f"{api}/api/ward")).json()
        assert [(b["gateway"], b["bed"]) for b in ward] == [("amb-12", "stretcher")]
        burden = await (await http.get(f"{api}/api/burden")).json()
        assert {k: v["raised"] for k, v in burden["by_priority"].items()} == {"low": 1}
        assert burden["bed_days"] == pytest.approx(12 / 1440, abs=1 / 1440)
        assert (await (await http.get(f"{api}/api/scores?patient={DETERIORATING}")).json())["points"] == []
        assert await (await http.get(f"{api}/api/markers?patient={DETERIORATING}")).json() == []


def test_uplot_is_vendored_from_npm_with_its_licence() -> None:
    vendored = DASHBOARD / "vendor" / "uplot"
    assert "MIT License" in (vendored / "LICENSE").read_text()
    npm = REPO / "vendor" / "npm" / "node_modules" / "uplot"
    if not npm.is_dir():
        pytest.skip("vendor/npm/node_modules is missing (make npm); the vendored copy is not compared")
    for name, src in (("uPlot.iife.min.js", npm / "dist" / "uPlot.iife.min.js"),
                      ("uPlot.min.css", npm / "dist" / "uPlot.min.css"), ("LICENSE", npm / "LICENSE")):
        assert (vendored / name).read_bytes() == src.read_bytes(), f"{name} differs from npm's: make vendor-js"


async def test_dashboard_in_chromium(api: Api) -> None:
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    requested: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            login = await context.new_page()
            await login.goto(api.url + "/")  # the login page, then the organisation's (OIDC) login
            await login.wait_for_url("**/login?next=/", timeout=15000)
            await login.click("#oidc-link")
            await login.wait_for_url(api.url + "/", timeout=15000)
            await login.close()
            # logged in (the session cookie is the context's): the dashboard must load without an error
            page = await context.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
            page.on("request", lambda r: requested.append(r.url))
            page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            await page.goto(api.url + "/")
            assert await page.evaluate("typeof uPlot") == "function"
            await page.wait_for_selector('#gateways tr[data-gateway="ward7-gw1"] td.online', timeout=15000)
            assert "offline" in await page.inner_text('#gateways tr[data-gateway="amb-12"]')
            row = page.locator('#ward tr[data-bed="bed-02"]')
            await row.wait_for(timeout=15000)
            cells = await row.locator("td").all_inner_texts()
            assert cells[1] == "bed-02" and cells[2] == DETERIORATING[:8] and int(cells[8]) >= 6 and "1 medium" in cells[9]
            assert await row.locator("td.n7, td.n5").count() == 1 and await row.locator("td.fresh").count() == 1
            await page.wait_for_selector('#models tr[data-model="vitals-anomaly"]', timeout=15000)
            assert "0.9.0" in await page.inner_text("#models") and "1.0.0" in await page.inner_text("#models")
            await page.wait_for_selector('#burden-priority tr[data-key="high"]', timeout=15000)
            assert "bed-days" in await page.inner_text("#bed-days")
            await page.wait_for_selector("#alarms tr.high", timeout=15000)
            await page.select_option("#patient", DETERIORATING)
            await page.select_option("#since", "1h")
            for chart in ("spo2", "heart_rate", "nibp_sys", "resp_rate", "temperature", "news2"):
                await page.wait_for_selector(f"#chart-{chart} .uplot canvas", timeout=15000)
                assert int(await page.get_attribute(f"#chart-{chart}", "data-points") or 0) >= 11, chart
            assert await page.get_attribute("#chart-spo2", "data-markers") == "2"  # spo2_low and news2_medium raised
            legend = await page.inner_text("#chart-spo2 .u-legend")
            assert "SpO2 (%)" in legend
            assert "(mm[Hg])" in await page.inner_text("#chart-nibp_sys .u-legend")
            assert "(/min)" in await page.inner_text("#chart-heart_rate .u-legend")
            shot = ARTIFACTS / "dashboard-v2.png"
            await page.screenshot(path=str(shot), full_page=True)
            await page.locator("#charts").screenshot(path=str(ARTIFACTS / "dashboard-v2-trends.png"))
            print(f"screenshots: {shot} and {ARTIFACTS / 'dashboard-v2-trends.png'}")
            seen = list(problems)  # closing the browser aborts whatever poll is in flight: not the page's fault
        finally:
            await browser.close()
    assert not seen, seen
    assert requested and all(u.startswith((api.url, "data:")) for u in requested), requested
