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
        async with aiohttp.ClientSession() as http:
            assert edge.ambulance is not None
            amb = edge.ambulance

            async def ready() -> bool:
                snap = edge.clinical.snapshot()
                return bool(amb.tracker.has_fix and snap["beds"] and snap["beds"][0]["values"]
                            and edge.http.port and cloud.http.port and edge.cloud_up())

            await until(ready, 20, "GPS fix, oximeter values and the uplink")
            crew = f"http://127.0.0.1:{edge.http.port}"
            board = f"http://127.0.0.1:{cloud.http.port}"
            bad = await http.post(f"{crew}/crew/api/notice", json={"hospital": "mars", "complaint": "stemi",
                                                                  "bed": "stretcher"})
            assert bad.status == 400
            assert (await http.post(f"{crew}/crew/api/notice", data="hospital=x")).status == 415
            t_post = time.monotonic()
            r = await http.post(f"{crew}/crew/api/notice", json={"hospital": "city-general", "complaint": "stemi",
                                                                "bed": "stretcher"})
            assert r.status == 200 and (await r.json())["notice"]["rev"] == 1

            async def on_board() -> list[dict[str, Any]]:
                j = await (await http.get(f"{board}/api/arrivals?hospital=city-general")).json()
                return list(j["arrivals"])

            [entry] = await until(on_board, 15, "the notice on the arrivals board")
            latency = time.monotonic() - t_post
            assert latency < 10.0
            assert entry["complaint"] == "stemi" and entry["gateway"] == gw and entry["patient"] == pseudonym
            assert entry["eta_s"] > 0 and entry["distance_m"] > 1000 and "spo2" in entry["vitals"]
            assert entry["position"]["lat"] == round(entry["position"]["lat"], 3)  # coarse, ~100 m
            assert "EPCR" not in json.dumps(entry)
            other = await (await http.get(f"{board}/api/arrivals?hospital=st-marys")).json()
            assert other["arrivals"] == []  # routed to its hospital only
            assert (await http.get(f"{board}/api/arrivals?hospital=x'y")).status == 400

            # the ED's systems read the retained feed
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"ed-{unique}") as ed:
                await ed.subscribe(topics.ed_notices_filter("city-general"), qos=1)
                async with asyncio.timeout(10):
                    async for m in ed.messages:
                        doc = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                        if doc["notice_id"] == entry["notice_id"]:
                            break
            assert doc["complaint"] == "stemi" and doc["hospital"] == "city-general"

            # the two pages in a real browser: the ED acknowledges on the board, the crew sees it
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = await browser.new_page()
                    await page.goto(f"{crew}/crew")
                    await page.wait_for_selector("#s-ack.no", timeout=15000)
                    assert "STEMI" in await page.inner_text("#s-complaint")
                    await page.screenshot(path=str(tmp_path / "crew-before.png"))
                    bpage = await browser.new_page()
                    await bpage.goto(f"{board}/arrivals?hospital=city-general")
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

            async def arrived() -> bool:
                return any(a["state"] == "arrived" for a in await on_board())

            await until(arrived, 10, "arrived on the board")

            # the journey's record under the same pseudonym (InfluxDB through the ingest)
            async def journey() -> dict[str, Any] | None:
                r = await http.get(f"{board}/api/arrivals/journey?notice_id={entry['notice_id']}")
                if r.status != 200:
                    return None
                j = await r.json()
                return j if len(j["notices"]) >= 2 and j["vitals"] else None

            j = await until(journey, 20, "the journey's record")
            assert j["patient"] == pseudonym and {v["param"] for v in j["vitals"]} >= {"spo2"}
            assert [n["state"] for n in j["notices"]][-1] == "arrived"

            metrics = await (await http.get(f"{crew}/metrics")).text()
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
