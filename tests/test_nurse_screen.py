"""The nurse's screen in a real headless Chromium, over a real ClinicalStage with the shipped (signed)
vitals-anomaly model: SOUND OFF until the sound is enabled (then IEC 60601-1-8 bursts), an out-of-range
value highlighted with its limit, the tile's colour following the highest unacknowledged alarm, NEWS2 and
the anomaly level in words, the first acknowledger kept, the steady cloud-link indicator, the bed trend
view from the gateway's memory, no console error or failed request; screenshots kept as artefacts
(``$PULSEGATE_ARTIFACTS``, else the test's tmp folder)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bench.localservices import free_port
from clinical.alarms.profiles import BedConfig, ClinicalConfig
from clinical.anomaly import VitalsAnomalyModel
from clinical.sample import Sample
from clinical.stage import ClinicalStage
from edge.nurse_page import PAGE_KEY, make_nurse_app
from edge.nurse_page.app import NURSE_RULES
from runtime.security.config import AuthSection, TlsSection
from runtime.security.listener import secure_listener
from runtime.security.tls import write_selfsigned
from tests.artifacts import artifacts_dir
from tests.security_fixtures import PASSWORDS, make_users
from tests.test_nurse_page import CHROMIUM_ARGS, FakeClock

ROOT = Path(__file__).resolve().parent.parent
NORMAL = {"heart_rate": 78.0, "spo2": 97.0, "resp_rate": 15.0}
UNITS = {"heart_rate": "/min", "spo2": "%", "resp_rate": "/min"}


@dataclass
class Ward:
    stage: ClinicalStage
    clock: FakeClock
    link: dict[str, Any]
    url: str
    override: dict[str, dict[str, float]] = field(default_factory=dict)

    def seconds(self, n: int) -> None:
        for _ in range(n):
            for bed in ("bed-02", "bed-07"):
                for p, v in {**NORMAL, **self.override.get(bed, {})}.items():
                    self.stage.on_sample(Sample(bed, p, v, UNITS[p], self.clock.t, time.time()))
            self.stage.tick(self.clock.t, time.time())
            self.clock.t += 1.0


@pytest.fixture
async def ward(tmp_path: Path) -> AsyncIterator[Ward]:
    clock = FakeClock()
    model = VitalsAnomalyModel(ROOT / "models/vitals-anomaly/1.0.0", trusted_keys=[ROOT / "examples/keys/dev-signing.pub"])
    stage = ClinicalStage(ClinicalConfig(), [BedConfig(id="bed-02", patient="MRN-SECRET-2"),
                                             BedConfig(id="bed-07", patient="MRN-SECRET-7")],
                          clock=clock, scorer=model)
    link: dict[str, Any] = {"configured": True, "connected": True, "backlog": 0}
    users, _ = make_users(tmp_path / "users.json")
    write_selfsigned(tmp_path / "cert.pem", tmp_path / "key.pem", ["127.0.0.1", "localhost"])
    tls = TlsSection(cert=str(tmp_path / "cert.pem"), key=str(tmp_path / "key.pem"))
    sec = secure_listener("nurse", "127.0.0.1", AuthSection(), tls, NURSE_RULES, users=users, ward="ward-7")
    app = make_nurse_app(stage.snapshot, stage.acknowledge, lambda: bool(link["connected"]), stage.silence,
                         push_interval_s=0.2, title="Ward 7", trends_provider=stage.trends,
                         link_info=lambda: dict(link), security=sec, ward="ward-7")
    stage.sinks.append(app[PAGE_KEY].offer)
    runner = web.AppRunner(app, **sec.runner_kwargs())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=sec.ssl).start()
    try:
        yield Ward(stage, clock, link, f"https://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), connector=aiohttp.TCPConnector(ssl=False))


async def login(s: aiohttp.ClientSession, url: str, user: str) -> dict[str, str]:
    r = await s.post(url + "auth/login", json={"user": user, "password": PASSWORDS[user]})
    assert r.status == 200
    return {"X-CSRF-Token": str((await r.json())["csrf"])}


@pytest.mark.browser
async def test_nurse_screen(ward: Ward, tmp_path: Path) -> None:
    from playwright.async_api import ConsoleMessage, Request, Response, async_playwright, expect

    out = artifacts_dir("nurse-screen", tmp_path)
    ward.seconds(15 * 60)  # a quarter of an hour of normal vitals: minute buckets, anomaly scores
    problems: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            ctx = await browser.new_context(ignore_https_errors=True, viewport={"width": 1920, "height": 1080})
            page = await ctx.new_page()

            def on_console(m: ConsoleMessage) -> None:
                if m.type in ("error", "warning"):
                    problems.append(f"console {m.type}: {m.text}")

            def on_response(r: Response) -> None:
                if r.status >= 400:
                    problems.append(f"HTTP {r.status} {r.url}")

            def on_failed(r: Request) -> None:
                problems.append(f"failed {r.url}")

            page.on("console", on_console)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("response", on_response)
            page.on("requestfailed", on_failed)
            await page.goto(ward.url + "login?next=/")
            await page.fill("#user", "nina")
            await page.fill("#password", PASSWORDS["nina"])
            await page.click("#submit")
            await page.wait_for_url(ward.url)
            tile2 = page.locator('article.bed[data-bed="bed-02"]')
            tile7 = page.locator('article.bed[data-bed="bed-07"]')
            await expect(tile7.locator('[data-param="heart_rate"]')).to_contain_text("78")

            # muted until someone enables the sound: a persistent banner, nothing to dismiss
            banner = page.locator("#sound-off")
            await expect(banner).to_be_visible()
            await expect(banner).to_contain_text("SOUND OFF")
            assert await page.evaluate("document.body.dataset.sound") == "off"

            # NEWS2 in words: what is missing and the response; the anomaly model's level in words
            await expect(tile7.locator(".news2-words")).to_contain_text("NEWS2 at least 0 (no BP, temperature)")
            await expect(tile7.locator(".news2-words")).to_contain_text("routine: Continue routine observations")
            await expect(tile7.locator(".news2")).to_have_text("NEWS2 ≥0")
            await expect(tile7.locator(".anomaly")).to_contain_text("Deterioration model: below the alarm level")
            assert int(await tile7.locator(".anomaly svg").get_attribute("data-points") or 0) >= 2

            # bed-02 desaturates: the value is coloured by the limit it is beyond, and shows that limit
            # (over a minute, as blood desaturates: a 22-point step from one second to the next is a probe
            # slipping off, which the smart policy shows as "check the probe", clinical/artifact.py)
            for k in range(60):
                ward.override["bed-02"] = {"spo2": 97.0 - 22.0 * k / 60}
                ward.seconds(1)
            ward.override["bed-02"] = {"spo2": 75.0}  # below the profile's life-threatening SpO2 limit (80)
            ward.seconds(15)
            spo2 = tile2.locator('[data-param="spo2"]')
            await expect(spo2).to_have_class("v out out-high")
            await expect(spo2).to_contain_text("75")
            await expect(spo2).to_contain_text("low limit 80")
            await expect(tile7.locator('[data-param="spo2"]')).to_have_class("v")
            await expect(tile2).to_have_class("bed alarm-high")
            alarm = page.locator('#alarms li[data-bed="bed-02"][data-priority="high"]')
            await expect(alarm).to_have_count(1)
            assert await page.evaluate("document.body.dataset.sounding") == "high"
            await page.screenshot(path=str(out / "station-1080p-muted.png"))

            # enabling the sound removes the banner and plays the high-priority burst: 10 pulses
            await page.locator("#sound-enable").click()
            await expect(banner).to_be_hidden()
            assert await page.evaluate("document.body.dataset.sound") == "on"
            assert await page.evaluate("document.body.dataset.lastBurst") == "high:10"
            assert await page.evaluate("sound.pulses") >= 10
            assert await page.evaluate("SOUND_PATTERNS.medium.offsets.length") == 3
            assert await page.evaluate("SOUND_PATTERNS.low.offsets.length") in (1, 2)

            # acknowledge: the tile is no longer red; it takes the colour of the highest alarm still
            # unacknowledged (the smart policy's brief-desaturation one, low), none if there is none
            await alarm.locator(".ack").click()
            await expect(alarm).to_have_attribute("data-state", "acknowledged")
            await expect(tile2).not_to_have_class(re.compile("alarm-high"))
            others = [a for a in ward.stage.manager.open_alarms() if a.bed == "bed-02" and a.acked_by is None]
            await expect(tile2).to_have_attribute("data-alarm", max(others, key=lambda a: a.priority).priority.label
                                                  if others else "")
            await expect(tile2).to_have_attribute("data-acknowledged", "1")
            await expect(spo2).to_have_class("v out out-high")  # the value is still out of range, and shown so

            # a second acknowledge keeps the first acknowledger and lists the later one
            alarm_id = await alarm.get_attribute("data-id")
            async with session() as s:  # the charge nurse acknowledges it too, from another station
                r = await s.post(ward.url + "nurse/api/ack", json={"alarm_id": alarm_id},
                                 headers=await login(s, ward.url, "carl"))
                assert r.status == 200
            await expect(alarm).to_contain_text("ack nina (also carl)")
            a = ward.stage.manager.get(str(alarm_id))
            assert a is not None and a.acked_by == "nina" and a.acked_also == ["carl"]

            # the cloud link indicator: always there, up / backlog / down
            link = page.locator("#link")
            await expect(link).to_have_attribute("data-link", "up")
            await expect(link).to_have_text("Cloud link up")
            ward.link["backlog"] = 12
            await expect(link).to_have_attribute("data-link", "backlog")
            await expect(link).to_contain_text("12 queued")
            ward.link["connected"] = False
            await expect(link).to_have_attribute("data-link", "down")
            await expect(page.locator("#cloud-banner")).to_be_visible()
            ward.link.update(connected=True, backlog=0)
            await expect(link).to_have_attribute("data-link", "up")

            # the bed view: sparklines of the last hours from the gateway's own memory
            await tile7.click()
            dialog = page.locator("#bed-view")
            await expect(dialog).to_be_visible()
            await expect(page.locator("#bed-view-title")).to_have_text("bed-07: trends")
            hr_row = dialog.locator('.trend-row[data-param="heart_rate"]')
            await expect(hr_row).to_contain_text("now 78")
            assert int(await hr_row.locator("svg").get_attribute("data-points") or 0) >= 14
            assert int(await dialog.locator('.trend-row[data-param="anomaly"] svg')
                       .get_attribute("data-points") or 0) >= 2
            await page.screenshot(path=str(out / "bed-view-1080p.png"))
            await dialog.locator("#bed-view-close").click()
            await expect(dialog).to_be_hidden()

            # the tablet layout: alarms above the beds, two bed columns
            await page.set_viewport_size({"width": 1024, "height": 768})
            cols = await page.evaluate("getComputedStyle(document.getElementById('beds'))"
                                       ".gridTemplateColumns.split(' ').length")
            assert cols == 2
            box_alarms = await page.locator("#alarms-section").bounding_box()
            box_beds = await page.locator("#beds-section").bounding_box()
            assert box_alarms and box_beds and box_alarms["y"] < box_beds["y"]
            await page.screenshot(path=str(out / "station-tablet.png"), full_page=True)
            assert "MRN-SECRET" not in await page.content()
        finally:
            await browser.close()
    assert problems == [], problems
    assert (out / "station-1080p-muted.png").stat().st_size > 10_000


async def test_trends_api(ward: Ward) -> None:
    ward.seconds(5 * 60 + 1)
    async with session() as s:
        r = await s.get(ward.url + "nurse/api/trends", params={"bed": "bed-07"}, allow_redirects=False)
        assert r.status in (302, 401)  # behind the login like the rest of the ward
        await login(s, ward.url, "vic")  # a viewer may see the trends
        r = await s.get(ward.url + "nurse/api/trends", params={"bed": "bed-07", "hours": "1"})
        body = await r.json()
        assert r.status == 200 and body["ok"] and body["bed"] == "bed-07"
        hr = body["series"]["heart_rate"]
        assert len(hr) == 5 and all(v == 78.0 for _, v in hr)
        assert [ago for ago, _ in hr] == sorted((ago for ago, _ in hr), reverse=True)  # oldest first
        assert body["minutes_kept"] == 360
        r = await s.get(ward.url + "nurse/api/trends", params={"bed": "bed-99"})
        assert r.status == 404
        for bad in ("0", "-1", "25", "nan", "x"):
            r = await s.get(ward.url + "nurse/api/trends", params={"bed": "bed-07", "hours": bad})
            assert r.status == 400, bad
    async with session() as s:  # the icon is public (the login page asks for it too)
        r = await s.get(ward.url + "favicon.ico")
        assert r.status == 200 and r.content_type == "image/svg+xml"
