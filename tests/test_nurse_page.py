"""The nurse-station page in a real headless Chromium, over TLS and behind the login: a bed shows, an alarm
appears as the emulated patient deteriorates (samples driven through the ClinicalStage in-process),
acknowledging works and is audited under the logged-in nurse, a viewer sees the ward but cannot act, and the
cloud-link banner follows cloud_status()."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bench.localservices import free_port
from clinical.alarms.profiles import BedConfig, ClinicalConfig
from clinical.sample import Sample
from clinical.stage import ClinicalStage
from edge.nurse_page import PAGE_KEY, make_nurse_app
from edge.nurse_page.app import NURSE_RULES
from runtime.security.config import AuthSection, TlsSection
from runtime.security.listener import ListenerSecurity, secure_listener
from runtime.security.tls import write_selfsigned
from tests.security_fixtures import PASSWORDS, make_users

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
    sec: ListenerSecurity

    def seconds(self, n: int, hr: float = 75.0, bed: str = "bed-07") -> None:
        for _ in range(n):
            for p, v, u in (("heart_rate", hr, "/min"), ("spo2", 97.0, "%"), ("resp_rate", 15.0, "/min")):
                self.stage.on_sample(Sample(bed, p, v, u, self.clock.t, time.time()))
            self.stage.tick(self.clock.t, time.time())
            self.clock.t += 1.0

    async def login(self, s: aiohttp.ClientSession, user: str) -> str:
        r = await s.post(self.url + "auth/login", json={"user": user, "password": PASSWORDS[user]}, ssl=False)
        assert r.status == 200
        return str((await r.json())["csrf"])


@pytest.fixture
async def ward(tmp_path: Path) -> AsyncIterator[Ward]:
    clock = FakeClock()
    stage = ClinicalStage(BEDSIDE, [BedConfig(id="bed-07", patient="MRN-SECRET-1")], clock=clock)
    cloud = {"up": True}
    users, _ = make_users(tmp_path / "users.json")
    write_selfsigned(tmp_path / "cert.pem", tmp_path / "key.pem", ["127.0.0.1", "localhost"])
    tls = TlsSection(cert=str(tmp_path / "cert.pem"), key=str(tmp_path / "key.pem"))
    sec = secure_listener("nurse", "127.0.0.1", AuthSection(), tls, NURSE_RULES, users=users, ward="ward-7")
    app = make_nurse_app(stage.snapshot, stage.acknowledge, lambda: cloud["up"], stage.silence,
                         push_interval_s=0.2, title="Ward 7", security=sec, ward="ward-7")
    stage.sinks.append(app[PAGE_KEY].offer)
    runner = web.AppRunner(app, **sec.runner_kwargs())
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=sec.ssl)
    await site.start()
    try:
        yield Ward(stage, clock, cloud, f"https://127.0.0.1:{port}/", sec)
    finally:
        await runner.cleanup()


@pytest.mark.browser
async def test_login_bed_alarm_acknowledge_and_cloud_banner(ward: Ward) -> None:
    from playwright.async_api import async_playwright, expect

    ward.seconds(5)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            ctx = await browser.new_context(ignore_https_errors=True)  # the self-signed certificate
            page = await ctx.new_page()
            await page.goto(ward.url)
            await page.wait_for_url("**/login?next=/")  # nothing of the ward before logging in
            assert "bed-07" not in await page.content()
            await page.fill("#user", "nina")
            await page.fill("#password", "not-her-password")
            await page.click("#submit")
            await expect(page.locator("#message")).to_contain_text("wrong user name or password")
            await page.fill("#user", "nina")
            await page.fill("#password", PASSWORDS["nina"])
            await page.click("#submit")
            await page.wait_for_url(ward.url)
            cookies = await ctx.cookies()
            assert [(c["name"], c["secure"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
                ("__Host-pg_nurse", True, True, "Strict")]
            await expect(page.locator("#user")).to_contain_text("nina")
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

            viewer = await (await browser.new_context(ignore_https_errors=True)).new_page()
            await viewer.goto(ward.url + "login?next=/")
            await viewer.fill("#user", "vic")
            await viewer.fill("#password", PASSWORDS["vic"])
            await viewer.click("#submit")
            await expect(viewer.locator('#alarms li[data-bed="bed-07"]')).to_have_count(1)
            await expect(viewer.locator("#alarms li .ack")).to_be_hidden()  # a viewer cannot acknowledge
            assert not ward.stage.manager.audit

            await page.locator("#alarms li .ack").first.click()
            await expect(alarm).to_have_attribute("data-state", "acknowledged")
            await expect(alarm).to_contain_text("ack nina")
            rec = ward.stage.manager.audit[-1]
            assert rec.action == "acknowledge" and rec.by == "nina" and rec.bed == "bed-07"
            assert ward.sec.guard.audit.find("acknowledge", "ok")[0].user == "nina"
            assert await page.evaluate("document.body.dataset.sounding") == ""

            ward.seconds(3)  # condition ends: the acknowledged alarm clears
            await expect(alarm).to_have_count(0)

            ward.cloud["up"] = False
            await expect(page.locator("#cloud-banner")).to_be_visible()

            await page.click("#logout")
            await page.wait_for_url("**/login?next=**")
            r = await page.request.get(ward.url + "nurse/api/state")
            assert r.status == 401
        finally:
            await browser.close()


async def test_api_needs_login_rejects_non_json_and_bounds_silence(ward: Ward) -> None:
    ward.seconds(15, hr=150.0)
    (a,) = ward.stage.manager.open_alarms()
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, connector=aiohttp.TCPConnector(ssl=False)) as s:
        for method, path in (("GET", ""), ("GET", "nurse/api/state"), ("GET", "nurse/static/app.js"),
                             ("GET", "nurse/ws"), ("POST", "nurse/api/ack"), ("POST", "nurse/api/silence")):
            r = await s.request(method, ward.url + path, json={"alarm_id": a.alarm_id}, allow_redirects=False)
            assert r.status in (302, 401), path
        csrf = await ward.login(s, "nina")
        h = {"X-CSRF-Token": csrf}
        r = await s.post(ward.url + "nurse/api/ack", data="alarm_id=x&initials=JS", headers={
            **h, "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 415
        r = await s.post(ward.url + "nurse/api/ack", json={"alarm_id": a.alarm_id}, headers={
            **h, "Origin": "https://evil.example"})
        assert r.status == 403  # cross-site
        for bad in (9999, 1e9, "Infinity", -5, 0, None, True):
            r = await s.post(ward.url + "nurse/api/silence", json={"alarm_id": a.alarm_id, "seconds": bad},
                             headers=h)
            assert r.status == 400, bad
        r = await s.post(ward.url + "nurse/api/silence", data=f'{{"alarm_id": "{a.alarm_id}", "seconds": Infinity}}',
                         headers={**h, "Content-Type": "application/json"})
        assert r.status == 400
        r = await s.post(ward.url + "nurse/api/silence", json={"alarm_id": a.alarm_id, "initials": "XX",
                                                               "seconds": 60}, headers=h)
        assert r.status == 200 and (await r.json())["by"] == "nina"  # typed initials are ignored
        assert a.silenced_until == pytest.approx(ward.clock.t + 60.0)
        r = await s.get(ward.url + "nurse/api/state")
        body = await r.json()
        assert body["alarms"][0]["state"] == "silenced" and body["cloud_online"] is True
        r = await s.get(ward.url + "nurse/static/app.js")
        assert r.status == 200 and "WebSocket" in await r.text()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     connector=aiohttp.TCPConnector(ssl=False)) as s:
        csrf = await ward.login(s, "vic")
        r = await s.post(ward.url + "nurse/api/ack", json={"alarm_id": a.alarm_id}, headers={"X-CSRF-Token": csrf})
        assert r.status == 403 and a.acked_by is None  # a viewer cannot acknowledge
        r = await s.post(ward.url + "nurse/api/silence", json={"alarm_id": a.alarm_id, "seconds": 60},
                         headers={"X-CSRF-Token": csrf})
        assert r.status == 403
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     connector=aiohttp.TCPConnector(ssl=False)) as s:
        csrf = await ward.login(s, "carl")  # a charge nurse may pause for longer
        r = await s.post(ward.url + "nurse/api/silence", json={"alarm_id": a.alarm_id, "seconds": 600},
                         headers={"X-CSRF-Token": csrf})
        assert r.status == 200 and a.silenced_until == pytest.approx(ward.clock.t + 600.0)
    rec = ward.stage.manager.audit[-1]
    assert rec.action == "silence" and rec.by == "carl" and rec.duration_s == 600.0


async def test_nurse_off_her_ward_cannot_act(tmp_path: Path) -> None:
    clock = FakeClock()
    stage = ClinicalStage(BEDSIDE, [BedConfig(id="bed-07")], clock=clock)
    users, _ = make_users(tmp_path / "users.json")  # nina is on ward-7
    sec = secure_listener("nurse", "127.0.0.1", AuthSection(), None, NURSE_RULES, users=users, ward="ward-9")
    app = make_nurse_app(stage.snapshot, stage.acknowledge, lambda: True, stage.silence, security=sec, ward="ward-9")
    runner = web.AppRunner(app, **sec.runner_kwargs())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        ward = Ward(stage, clock, {}, f"http://127.0.0.1:{port}/", sec)
        ward.seconds(15, hr=150.0)
        (a,) = stage.manager.open_alarms()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            csrf = await ward.login(s, "nina")
            r = await s.post(ward.url + "nurse/api/ack", json={"alarm_id": a.alarm_id}, headers={"X-CSRF-Token": csrf})
            assert r.status == 403 and "ward-9" in await r.text()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            csrf = await ward.login(s, "carl")  # a charge nurse acts on every ward
            r = await s.post(ward.url + "nurse/api/ack", json={"alarm_id": a.alarm_id}, headers={"X-CSRF-Token": csrf})
            assert r.status == 200 and a.acked_by == "carl"
        assert sec.guard.audit.find("acknowledge", "denied")[0].user == "nina"
    finally:
        await runner.cleanup()
