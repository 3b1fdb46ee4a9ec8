"""The ambulance end to end, all real: a Masimo oximeter and a GPS receiver on ptys, the ambulance gateway
(EdgeDaemon, kind = "ambulance"), its local broker (the ePCR), the cloud broker, the cloud daemon with the
arrivals service and ingest into a real InfluxDB, and headless Chromium on the crew page and the arrivals board."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest

from bench.localservices import Influxd, Mosquitto
from cloud.config import load_cloud_config
from cloud.daemon import CloudDaemon
from edge.config import load_edge_config
from edge.daemon import EdgeDaemon
from edge.pseudonym import Pseudonymizer
from firmware_bridge.emulators.gps import GpsEmulator, make_route
from firmware_bridge.emulators.pty import PtyEmulator, open_pty_emulator
from firmware_bridge.emulators.scenarios import make_scenario
from runtime.security.users import UserStore
from tests.security_fixtures import FAST
from tests.test_cloud_api import CHROMIUM, CHROMIUM_ARGS
from tests.uplink_fixtures import own_broker
from wire import topics

pytestmark = pytest.mark.integration
KEY = b"0123456789abcdef0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]


def edge_toml(tmp: Path, gw: str, cloud_port: int, local_port: int, gps: str, masimo: str) -> Path:
    p = tmp / "edge.toml"
    p.write_text(f"""
[gateway]
id = "{gw}"
site = "ems"
kind = "ambulance"
state_dir = "{tmp / 'state'}"
pseudonym_key = "pseudonym-key"
[http]
port = 0
[local_bus]
port = {local_port}
[summaries]
interval_s = 2
[uplink]
host = "127.0.0.1"
port = {cloud_port}
outbox_path = "outbox.sqlite"
status_interval_s = 2
reconnect_min_s = 0.1
reconnect_max_s = 0.5
resume_holdoff_s = 0.2
[uplink.budget]
bytes_per_hour = 65536
[[uplink.links]]
name = "cell"
host = "127.0.0.1"
port = {cloud_port}
metered = true
[ambulance]
notice_min_gap_s = 1
[ambulance.gps]
source = "serial"
port = "{gps}"
[[ambulance.hospitals]]
id = "city-general"
lat = 52.3702
lon = 4.8952
[[ambulance.hospitals]]
id = "st-marys"
lat = 52.34
lon = 4.87
[models]
trusted_keys = ["{REPO / 'examples' / 'keys' / 'dev-signing.pub'}"]
[[beds]]
id = "stretcher"
patient = "EPCR-2026-0042"
[[devices]]
driver = "masimo"
id = "rad8"
bed = "stretcher"
port = "{masimo}"
""")
    return p


def cloud_toml(tmp: Path, unique: str, port: int, influx: Influxd) -> Path:
    p = tmp / "cloud.toml"
    p.write_text(f"""
[cloud]
id = "c-{unique}"
state_dir = "{tmp / 'cloud-state'}"
[api]
port = 0
[ingest]
host = "127.0.0.1"
port = {port}
client_id = "ingest-{unique}"
group = "g{unique}"
deadletter_dir = "{tmp / 'dead'}"
flush_s = 0.2
[influx]
url = "{influx.url}"
database = "{unique}"
[arrivals]
enabled = true
""")
    return p


def accounts(tmp: Path) -> None:
    """The crew log in on the ambulance (nurses of its ward, the site), the ED's staff in the cloud
    (their hospital among their sites); one cloud user of another hospital sees none of it."""
    edge = UserStore(tmp / "state" / "users.json", FAST)
    edge.add("crew1", "crew-password-1", ["nurse"], wards=["ems"])
    edge.add("vic", "viewer-password-1", ["viewer"])
    edge.save()
    cloud = UserStore(tmp / "cloud-state" / "users.json", FAST)
    cloud.add("ed1", "ed-password-1", ["nurse"], sites=["city-general"])
    cloud.add("ed2", "ed-password-2", ["nurse"], sites=["st-marys"])
    cloud.save()


async def login(http: aiohttp.ClientSession, url: str, user: str, password: str) -> str:
    r = await http.post(f"{url}/auth/login", json={"user": user, "password": password}, headers={"Origin": url})
    body = await r.json()
    assert r.status == 200, body
    return str(body["csrf"])


async def browser_login(page: Any, url: str, user: str, password: str) -> None:
    await page.goto(url)
    await page.wait_for_url("**/login?next=**", timeout=15000)
    await page.fill("#user", user)
    await page.fill("#password", password)
    await page.click("#submit")
    await page.wait_for_url(url.split("?")[0] + "**", timeout=15000)  # the guard's redirect keeps the path only
    if "?" in url:
        await page.goto(url)


async def until(pred: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        v = await pred()
        if v:
            return v
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_ambulance_notice_reaches_the_board_and_the_ack_reaches_the_crew(
        tmp_path: Path, broker: Mosquitto, influx: Influxd, unique: str) -> None:
    from playwright.async_api import async_playwright

    (tmp_path / "pseudonym-key").write_bytes(KEY)
    (tmp_path / "state").mkdir()
    (tmp_path / "cloud-state").mkdir()
    accounts(tmp_path)
    gw = f"amb-{unique}"
    local = own_broker(tmp_path / "local")
    gps = PtyEmulator(GpsEmulator(make_route("city", minutes=10)), make_scenario("stable")).start()
    masimo = open_pty_emulator("masimo", "stable", seed=3)
    edge = EdgeDaemon(load_edge_config(edge_toml(tmp_path, gw, broker.port, local.port, gps.path, masimo.path)),
                      tmp_path)
    cloud = CloudDaemon(load_cloud_config(cloud_toml(tmp_path, unique, broker.port, influx)), tmp_path)
    cloud_stop, edge_stop = asyncio.Event(), asyncio.Event()
    cloud_task = asyncio.create_task(cloud.run(cloud_stop, install_signals=False))
    edge_task = asyncio.create_task(edge.run(edge_stop, install_signals=False))
    pseudonym = Pseudonymizer(KEY).pseudonym("EPCR-2026-0042")
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http, \
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as ed, \
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
            assert edge.ambulance is not None
            amb = edge.ambulance

            async def ready() -> bool:
                snap = edge.clinical.snapshot()
                return bool(amb.tracker.has_fix and snap["beds"] and snap["beds"][0]["values"]
                            and edge.http.port and cloud.http.port and edge.cloud_up())

            await until(ready, 20, "GPS fix, oximeter values and the uplink")
            crew = f"http://127.0.0.1:{edge.http.port}"
            board = f"http://127.0.0.1:{cloud.http.port}"
            req = {"hospital": "city-general", "complaint": "stemi", "bed": "stretcher"}
            assert (await http.post(f"{crew}/crew/api/notice", json=req, headers={"Origin": crew})).status == 401
            viewer = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            async with viewer:
                csrf_v = await login(viewer, crew, "vic", "viewer-password-1")
                r = await viewer.post(f"{crew}/crew/api/notice", json=req,
                                      headers={"Origin": crew, "X-CSRF-Token": csrf_v})
                assert r.status == 403  # a viewer reads the crew page, sends nothing
            csrf = await login(http, crew, "crew1", "crew-password-1")
            hdr = {"Origin": crew, "X-CSRF-Token": csrf}
            bad = await http.post(f"{crew}/crew/api/notice", json={**req, "hospital": "mars"}, headers=hdr)
            assert bad.status == 400
            assert (await http.post(f"{crew}/crew/api/notice", data="hospital=x", headers=hdr)).status == 415
            assert (await http.post(f"{crew}/crew/api/notice", json=req, headers={"Origin": crew})).status == 403
            t_post = time.monotonic()
            r = await http.post(f"{crew}/crew/api/notice", json=req, headers=hdr)
            assert r.status == 200 and (await r.json())["notice"]["rev"] == 1
            assert (await ed.get(f"{board}/api/arrivals")).status == 401
            csrf_ed = await login(ed, board, "ed1", "ed-password-1")
            await login(other, board, "ed2", "ed-password-2")

            async def on_board() -> list[dict[str, Any]]:
                j = await (await ed.get(f"{board}/api/arrivals?hospital=city-general")).json()
                return [a for a in j["arrivals"] if a["gateway"] == gw]  # the session's broker is shared

            [entry] = await until(on_board, 15, "the notice on the arrivals board")
            latency = time.monotonic() - t_post
            assert latency < 10.0
            assert entry["complaint"] == "stemi" and entry["gateway"] == gw and entry["patient"] == pseudonym
            assert entry["eta_s"] > 0 and entry["distance_m"] > 1000 and "spo2" in entry["vitals"]
            assert entry["position"]["lat"] == round(entry["position"]["lat"], 3)  # coarse, ~100 m
            assert "EPCR" not in json.dumps(entry)
            mine = await (await ed.get(f"{board}/api/arrivals?hospital=st-marys")).json()
            assert mine["arrivals"] == []  # routed to its hospital only
            theirs = await (await other.get(f"{board}/api/arrivals")).json()
            assert all(a["hospital"] == "st-marys" for a in theirs["arrivals"])  # another hospital's staff: not ours
            r = await other.post(f"{board}/api/arrivals/ack", json={"hospital": "city-general",
                                 "notice_id": entry["notice_id"]}, headers={"Origin": board})
            assert r.status == 403  # no CSRF token
            assert (await ed.get(f"{board}/api/arrivals?hospital=x'y")).status == 400
            assert csrf_ed

            # the ED's systems read the retained feed
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"ed-{unique}") as feed:
                await feed.subscribe(topics.ed_notices_filter("city-general"), qos=1)
                async with asyncio.timeout(10):
                    async for m in feed.messages:
                        doc = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                        if doc["notice_id"] == entry["notice_id"]:
                            break
            assert doc["complaint"] == "stemi" and doc["hospital"] == "city-general"

            # the two pages in a real browser: the ED acknowledges on the board, the crew sees it
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = await (await browser.new_context()).new_page()
                    await browser_login(page, f"{crew}/crew", "crew1", "crew-password-1")
                    await page.wait_for_selector("#s-ack.no", timeout=15000)
                    assert "STEMI" in await page.inner_text("#s-complaint")
                    await page.screenshot(path=str(tmp_path / "crew-before.png"))
                    bpage = await (await browser.new_context()).new_page()
                    await browser_login(bpage, f"{board}/arrivals?hospital=city-general", "ed1", "ed-password-1")
                    await bpage.wait_for_selector(f'tr[data-notice="{entry["notice_id"]}"] button.ack', timeout=15000)
                    assert "STEMI" in await bpage.inner_text("#rows")
                    await bpage.screenshot(path=str(tmp_path / "board.png"))
                    await bpage.click(f'tr[data-notice="{entry["notice_id"]}"] button.ack')
                    await page.wait_for_selector("#s-ack.yes", timeout=15000)
                    await page.screenshot(path=str(tmp_path / "crew-acked.png"))
                finally:
                    await browser.close()
            assert amb.sender.current is not None and amb.sender.current.acked_rev >= 1

            # the vehicle's ePCR on the local broker: bad input counted, "arrived" ends the notice
            async with aiomqtt.Client("127.0.0.1", local.port, identifier=f"epcr-{unique}") as epcr:
                await epcr.subscribe(topics.local_epcr(gw, "notice_state"), qos=1)
                await epcr.publish(topics.local_epcr(gw, "notice"), b"{not json", qos=1)
                await epcr.publish(topics.local_epcr(gw, "notice"), json.dumps({"state": "arrived"}), qos=1)
                async with asyncio.timeout(10):
                    async for m in epcr.messages:
                        st = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                        if st["notice"] and st["notice"]["state"] == "arrived":
                            break
            assert st["notice"]["acked"] is True and amb.epcr_rejected == 1
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"clean-{unique}") as c:
                await c.publish(topics.notice_acks("ems", gw), b"", qos=1, retain=True)  # the broker is shared

            async def arrived() -> bool:
                return any(a["state"] == "arrived" for a in await on_board())

            await until(arrived, 10, "arrived on the board")

            # the journey's record under the same pseudonym (InfluxDB through the ingest)
            async def journey() -> dict[str, Any] | None:
                r = await ed.get(f"{board}/api/arrivals/journey?notice_id={entry['notice_id']}")
                if r.status != 200:
                    return None
                j = await r.json()
                return j if len(j["notices"]) >= 2 and j["vitals"] else None

            j = await until(journey, 20, "the journey's record")
            assert j["patient"] == pseudonym and {v["param"] for v in j["vitals"]} >= {"spo2"}
            assert [n["state"] for n in j["notices"]][-1] == "arrived"

            async with aiohttp.ClientSession() as anon:  # Prometheus on the box: loopback, no login
                metrics = await (await anon.get(f"{crew}/metrics")).text()
            assert "pulsegate_budget_bytes_hour" in metrics and "pulsegate_notices_sent_total" in metrics
            health = await (await http.get(f"{crew}/healthz")).json()
            assert health["ambulance"]["position"]["precision"].startswith("0.001")
            assert 0 < health["ambulance"]["budget"]["bytes_hour"] < 65536
    finally:
        edge_stop.set()
        await asyncio.wait_for(edge_task, 30)
        cloud_stop.set()
        await asyncio.wait_for(cloud_task, 30)
        gps.stop()
        masimo.stop()
        local.stop()
