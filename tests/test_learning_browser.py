"""The learning loop's two screens in a real headless Chromium (issue 12), logged in as their users are:

- the NURSE PAGE of a full EdgeDaemon (TLS, login as the nurse): an alarm raised by samples shows the
  four one-tap verdict buttons; one tap acknowledges it with the verdict (the page shows it acknowledged by
  the nurse), and the verdict goes through the gateway's outbox and uplink as its fixed code, through a
  real mosquitto and the cloud daemon's ingest into a real influxd (patient as the gateway's pseudonym);
- the FLEET DASHBOARD behind the OIDC login (tests/cloud_api_fixtures.py): the rollout table (stage,
  outcome, last reason), the shadow figures per gateway and the decision history, from a real influxd;
  only the caller's sites.
No console error and no failed request on either page.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.localservices import Influxd, Mosquitto, free_port
from clinical.sample import Sample
from cloud.config import load_cloud_config
from cloud.daemon import CloudDaemon
from cloud.influx import InfluxWriter
from edge.config import load_edge_config
from edge.daemon import EdgeDaemon
from edge.pseudonym import Pseudonymizer
from tests.cloud_api_fixtures import guarded_fleet_api
from tests.security_fixtures import PASSWORDS
from tests.test_dashboard_v2 import CHROMIUM, CHROMIUM_ARGS
from tests.test_end_to_end import influxql
from tests.test_feedback import KEY, _configs
from tests.test_rollout_api import write_rollouts

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _watch(page: object, problems: list[str]) -> None:
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))  # type: ignore[attr-defined]
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)  # type: ignore[attr-defined]


async def test_nurse_page_verdict_tap_acknowledges_and_reaches_the_uplink_as_a_code(
        tmp_path: Path, broker: Mosquitto, influx: Influxd, unique: str) -> None:
    from playwright.async_api import async_playwright, expect

    http_port = free_port()
    edge_toml, cloud_toml = _configs(tmp_path, unique, broker, influx, http_port)
    cloud = CloudDaemon(load_cloud_config(cloud_toml), tmp_path)
    edge = EdgeDaemon(load_edge_config(edge_toml), tmp_path)
    gw = f"gw-{unique}"
    cloud_stop, edge_stop = asyncio.Event(), asyncio.Event()
    cloud_task = asyncio.create_task(cloud.run(cloud_stop, install_signals=False))
    edge_task = asyncio.create_task(edge.run(edge_stop, install_signals=False))
    problems: list[str] = []
    url = f"https://127.0.0.1:{http_port}/"
    try:
        edge.clinical.on_sample(Sample("bed-01", "nibp_sys", 78.0, "", time.monotonic(), time.time()))
        alarm = next(a for a in edge.clinical.manager.open_alarms() if a.bed == "bed-01")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                ctx = await browser.new_context(ignore_https_errors=True, viewport={"width": 1600, "height": 1000})
                page = await ctx.new_page()
                deadline = time.monotonic() + 60
                while True:  # the daemon's listener comes up with the daemon
                    try:
                        await page.goto(url + "login?next=/")
                        break
                    except Exception:
                        assert time.monotonic() < deadline, "the nurse page never answered"
                        await asyncio.sleep(0.3)
                _watch(page, problems)
                await page.fill("#user", "nina")
                await page.fill("#password", PASSWORDS["nina"])
                await page.click("#submit")
                await page.wait_for_url(url)
                li = page.locator(f'#alarms li[data-id="{alarm.alarm_id}"]')
                await expect(li).to_have_count(1, timeout=20000)
                buttons = li.locator("button.verdict")
                await expect(buttons).to_have_count(4)
                assert [await b.get_attribute("data-verdict") for b in await buttons.all()] == [
                    "actionable", "not_actionable", "artifact", "already_known"]
                await li.locator('button.verdict[data-verdict="actionable"]').click()  # one tap
                await expect(li).to_have_attribute("data-state", "acknowledged", timeout=20000)
                await expect(li.locator(".meta")).to_contain_text("ack nina")
                await expect(li.locator(".ack")).to_be_hidden()
                seen = list(problems)
            finally:
                await browser.close()
        a = edge.clinical.manager.get(alarm.alarm_id)
        assert a is not None and a.acked_by == "nina"
        assert edge.feedback.verdicts_sent == 1 and not edge.feedback.verdicts_rejected
        rows: list[dict[str, object]] = []
        deadline = time.monotonic() + 90
        while not rows:  # outbox -> uplink -> mosquitto -> ingest -> influxd
            assert time.monotonic() < deadline, "the verdict never reached InfluxDB"
            await asyncio.sleep(0.3)
            rows = influxql(influx, unique, f"SELECT * FROM verdicts WHERE gateway = '{gw}'")
    finally:
        edge_stop.set()
        await asyncio.wait_for(edge_task, 30)
        cloud_stop.set()
        await asyncio.wait_for(cloud_task, 30)
    assert not seen, seen
    assert len(rows) == 1 and rows[0]["verdict"] == "actionable" and rows[0]["alarm_id"] == alarm.alarm_id
    assert rows[0]["patient"] == Pseudonymizer(KEY.encode()).pseudonym("MRN-777001") and rows[0]["by"] == "nina"


async def test_dashboard_rollout_tables(tmp_path: Path, influx: Influxd, unique: str) -> None:
    from playwright.async_api import async_playwright, expect

    w = InfluxWriter(influx.url, unique)
    await write_rollouts(w)
    problems: list[str] = []
    try:
        async with guarded_fleet_api(w, tmp_path) as api:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
                    login = await ctx.new_page()
                    await login.goto(api.url + "/")  # the login page, then the organisation's (OIDC) login
                    await login.wait_for_url("**/login?next=/", timeout=15000)
                    await login.click("#oidc-link")
                    await login.wait_for_url(api.url + "/", timeout=15000)
                    await login.close()
                    page = await ctx.new_page()
                    _watch(page, problems)
                    await page.goto(api.url + "/")
                    row = page.locator('#rollouts tr[data-rollout="r1"]')
                    await expect(row).to_have_count(1, timeout=15000)
                    cells = await row.locator("td").all_inner_texts()
                    assert cells[:5] == ["r1", "vitals-anomaly", "1.1.0", "1", "rolled_back"], cells
                    assert "regression" in cells[5]
                    assert await page.locator('#rollouts tr[data-rollout="r2"]').count() == 0  # another site
                    shadow = {(await r.locator("td").all_inner_texts())[1]: await r.locator("td").all_inner_texts()
                              for r in await page.locator("#shadow tbody tr").all()}
                    assert set(shadow) == {"gw-1", "gw-2"}
                    assert shadow["gw-2"][2:7] == ["shadow", "120", "0.700", "40", "2"], shadow["gw-2"]
                    assert shadow["gw-1"][2] == "rolled_back" and shadow["gw-1"][7] == "0.10 / 0.40"
                    history = [await r.locator("td").all_inner_texts() for r in await page.locator(
                        "#decisions tbody tr").all()]
                    assert [h[2] for h in history] == ["rollback", "offer", "offer"]  # newest first
                    assert history[0][4] == "gw-1, gw-2" and "regression" in history[0][5]
                    assert all(h[1] == "r1" and h[5] for h in history)
                    seen = list(problems)
                finally:
                    await browser.close()
    finally:
        await w.close()
    assert not seen, seen
