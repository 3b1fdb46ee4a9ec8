"""The nurse-station page in a real headless Chromium: a bed shows, an alarm appears as the emulated
patient deteriorates (samples driven through the ClinicalStage in-process), acknowledging works and is
audited, and the cloud-link banner follows cloud_status()."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from bench.localservices import free_port
from clinical.alarms.profiles import BedConfig, ClinicalConfig
from clinical.sample import Sample
from clinical.stage import ClinicalStage
from edge.nurse_page import PAGE_KEY, make_nurse_app

CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]

# these tests are about delivery and the page, with single-threshold alarms (the "bedside" profiles)
BEDSIDE = ClinicalConfig(default_profile="bedside", scale2_profile="bedside-copd")


class FakeClock:
    def __init__(self) -> None:
        self.t = 50_000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Ward:
    stage: ClinicalStage
    clock: FakeClock
    cloud: dict[str, bool]
    url: str

    def seconds(self, n: int, hr: float = 75.0, bed: str = "bed-07") -> None:
        for _ in range(n):
            for p, v, u in (("heart_rate", hr, "/min"), ("spo2", 97.0, "%"), ("resp_rate", 15.0, "/min")):
                self.stage.on_sample(Sample(bed, p, v, u, self.clock.t, time.time()))
            self.stage.tick(self.clock.t, time.time())
            self.clock.t += 1.0


@pytest.fixture
async def ward() -> AsyncIterator[Ward]:
    clock = FakeClock()
    stage = ClinicalStage(BEDSIDE, [BedConfig(id="bed-07", patient="MRN-SECRET-1")], clock=clock)
    cloud = {"up": True}
    app = make_nurse_app(stage.snapshot, stage.acknowledge, lambda: cloud["up"], stage.silence,
                         push_interval_s=0.2, title="Ward 7")
    stage.sinks.append(app[PAGE_KEY].offer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield Ward(stage, clock, cloud, f"http://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()


@pytest.mark.browser
async def test_bed_alarm_acknowledge_and_cloud_banner(ward: Ward) -> None:
    from playwright.async_api import async_playwright, expect

    ward.seconds(5)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(ward.url)
            tile = page.locator('article.bed[data-bed="bed-07"]')
            await expect(tile).to_be_visible()
            await expect(tile.locator('[data-param="heart_rate"]')).to_contain_text("75")
            await expect(page.locator("#no-alarms")).to_be_visible()
            await expect(page.locator("#cloud-banner")).to_be_hidden()
            assert "MRN-SECRET-1" not in await page.content()

            ward.seconds(15, hr=150.0)  # sustained tachycardia past the 10 s condition delay
            alarm = page.locator('#alarms li[data-bed="bed-07"]')
            await expect(alarm).to_have_count(1)
            await expect(alarm).to_have_attribute("data-priority", "medium")
            await expect(alarm).to_have_attribute("data-state", "active")
            await expect(alarm).to_contain_text("HR high (limit 130)")
            await expect(tile).to_have_class("bed alarm-medium")
            assert await page.evaluate("document.body.dataset.sounding") == "medium"

            await page.locator("#alarms li .ack").first.click()  # no initials yet: refused, nothing acked
            await expect(page.locator("#message")).to_contain_text("initials")
            assert not ward.stage.manager.audit

            await page.fill("#initials", "js")
            await page.locator("#alarms li .ack").first.click()
            await expect(alarm).to_have_attribute("data-state", "acknowledged")
            await expect(alarm).to_contain_text("ack JS")
            rec = ward.stage.manager.audit[-1]
            assert rec.action == "acknowledge" and rec.by == "JS" and rec.bed == "bed-07"
            assert await page.evaluate("document.body.dataset.sounding") == ""

            ward.seconds(3)  # condition ends: the acknowledged alarm clears
            await expect(alarm).to_have_count(0)

            ward.cloud["up"] = False
            await expect(page.locator("#cloud-banner")).to_be_visible()
        finally:
            await browser.close()


async def test_api_rejects_non_json_and_bad_initials(ward: Ward) -> None:
    ward.seconds(15, hr=150.0)
    (a,) = ward.stage.manager.open_alarms()
    async with aiohttp.ClientSession() as s:
        r = await s.post(ward.url + "nurse/api/ack", data="alarm_id=x&initials=JS",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 415
        r = await s.post(ward.url + "nurse/api/ack", json={"alarm_id": a.alarm_id, "initials": "1<>"})
        assert r.status == 400 and "initials" in (await r.json())["error"]
        r = await s.post(ward.url + "nurse/api/silence", json={"alarm_id": a.alarm_id, "initials": "AB",
                                                               "seconds": 9999})
        assert r.status == 200
        assert a.silenced_until == pytest.approx(ward.clock.t + 120.0)
        r = await s.get(ward.url + "nurse/api/state")
        body = await r.json()
        assert body["alarms"][0]["state"] == "silenced" and body["cloud_online"] is True
        r = await s.get(ward.url + "nurse/static/app.js")
        assert r.status == 200 and "WebSocket" in await r.text()
