"""The cloud REST API and fleet dashboard over a real InfluxDB, and in real headless Chromium."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bench.localservices import Influxd, free_port
from cloud.api import FleetApi
from cloud.influx import InfluxWriter
from cloud.points import to_lines
from wire.messages import Alarm, Status, Summary, SummaryItem

pytestmark = pytest.mark.integration
P1 = "ab" * 16
CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    raise RuntimeError("chromium is not installed (apt-get install -y chromium; make test does this)")
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture
async def api(influx: Influxd, unique: str) -> AsyncIterator[str]:
    writer = InfluxWriter(influx.url, unique)
    await writer.create_database()
    now = time.time_ns()
    lines: list[str] = []
    for i in range(5):
        t = now - (5 - i) * 60 * 10**9
        s = Summary(v=1, gw="ward7-gw1", seq=i, interval_s=60.0,
                    items=[SummaryItem("bed-02", P1, "spo2", t, 60, 90.0 - i, 96.0 - i, 93.0 - i, 92.0 - i)])
        lines += to_lines(s, "stmarys", "summaries")
    lines += to_lines(Status(v=1, gw="ward7-gw1", seq=0, t=now, online=True, backlog=3, oldest_unsent_s=1.5,
                             software="pulsegate 0.1.0", models={"vitals-anomaly": "1.0.0"}), "stmarys", "status")
    lines += to_lines(Status(v=1, gw="amb-12", seq=0, t=now - 10**9, online=False), "ambulance", "status")
    lines += to_lines(Alarm(v=1, gw="ward7-gw1", seq=9, alarm_id="a-1", bed="bed-02", patient=P1, t=now - 30 * 10**9,
                            state="raised", priority="high", kind="physiological", source="threshold",
                            condition="spo2_low", value=85.0, param="spo2", latency_ms={"total": 1.25},
                            changed=now - 20 * 10**9),
                      "stmarys", "alarms")
    resp = await writer.write(lines)
    assert resp.ok, resp.text
    app = web.Application()
    FleetApi(writer).setup(app)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
    await writer.close()


async def test_api_answers_from_influx_and_rejects_bad_parameters(api: str) -> None:
    async with aiohttp.ClientSession() as http:
        gws = await (await http.get(f"{api}/api/gateways")).json()
        by_id = {g["gateway"]: g for g in gws}
        assert by_id["ward7-gw1"]["state"] == "online" and by_id["ward7-gw1"]["backlog"] == 3
        assert by_id["ward7-gw1"]["models"] == {"vitals-anomaly": "1.0.0"}
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


async def test_dashboard_in_chromium_shows_gateways_alarms_and_trend(api: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(api + "/")
            await page.wait_for_selector('#gateways tr[data-gateway="ward7-gw1"] td.online', timeout=15000)
            assert "offline" in await page.inner_text('#gateways tr[data-gateway="amb-12"]')
            await page.wait_for_selector("#alarms tr.high", timeout=15000)
            assert "spo2_low" in await page.inner_text("#alarms")
            await page.select_option("#param", "spo2")
            await page.wait_for_selector("#chart polyline.line", timeout=15000)
            await page.screenshot(path=str(tmp_path / "dashboard.png"))
        finally:
            await browser.close()
