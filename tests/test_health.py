"""Liveness and readiness of both daemons against real mosquitto and influxd: /readyz (and /healthz)
say 503 when the component cannot do its job (cloud: broker down, InfluxDB unreachable; gateway: the
local alarm bus down), /livez stays 200 while the process answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.localservices import Influxd, Mosquitto, free_port
from cloud.config import CloudConfig
from cloud.daemon import CloudDaemon
from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from runtime.configload import loads
from tests.test_daemon_process import gateway_toml

pytestmark = pytest.mark.integration


async def get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.json()


async def until(probe: Callable[[], Any], want: int, limit_s: float = 20.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        try:
            status, body = await probe()
        except aiohttp.ClientConnectionError as exc:  # the daemon is still starting
            status, body = 0, {"error": str(exc)}
        if status == want:
            return body
        assert asyncio.get_running_loop().time() < deadline, (status, body)
        await asyncio.sleep(0.2)


def cloud_config(tmp: Path, broker_port: int, influx_url: str, api_port: int) -> CloudConfig:
    return loads(f"""
[cloud]
state_dir = "{tmp / 'state'}"
[api]
port = {api_port}
[ingest]
host = "127.0.0.1"
port = {broker_port}
client_id = "health-{api_port}"
deadletter_dir = "{tmp / 'dead'}"
[influx]
url = "{influx_url}"
database = "health"
""", CloudConfig)


async def running(daemon: CloudDaemon | EdgeDaemon) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop, install_signals=False))
    try:
        yield
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


async def test_cloud_not_ready_with_its_broker_down(tmp_path: Path, influx: Influxd) -> None:
    broker = Mosquitto(tmp_path / "mosq").start()
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        async for _ in running(CloudDaemon(cloud_config(tmp_path, broker.port, influx.url, port), tmp_path)):
            ready = await until(lambda: get(base + "/readyz"), 200)
            assert ready["ok"] and ready["components"] == {"broker": {"ok": True}, "influxdb": {"ok": True}}
            broker.stop()
            body = await until(lambda: get(base + "/readyz"), 503)
            assert body["ok"] is False and body["components"]["broker"] == {"ok": False}
            assert body["ingest_connected"] is False and body["influx_reachable"] is True
            assert (await get(base + "/healthz"))[0] == 503
            status, live = await get(base + "/livez")
            assert status == 200 and live["live"] is True
    finally:
        broker.stop()


async def test_cloud_not_ready_with_influxdb_unreachable(tmp_path: Path, broker: Mosquitto) -> None:
    port = free_port()
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    base = f"http://127.0.0.1:{port}"
    async for _ in running(CloudDaemon(cloud_config(tmp_path, broker.port, nowhere, port), tmp_path)):
        await until(lambda: get(base + "/livez"), 200)
        body = await until(lambda: get(base + "/readyz"), 503)
        assert body["influx_reachable"] is False and body["components"]["influxdb"] == {"ok": False}


async def test_gateway_not_ready_with_its_local_alarm_bus_down(tmp_path: Path) -> None:
    bus = Mosquitto(tmp_path / "bus").start()
    (tmp_path / "key").write_text("k" * 32)
    port = free_port()
    cfg = loads(gateway_toml("health-gw", tmp_path, port, bus.port), EdgeConfig)
    base = f"http://127.0.0.1:{port}"
    try:
        async for _ in running(EdgeDaemon(cfg, tmp_path)):
            ready = await until(lambda: get(base + "/readyz"), 200)
            assert ready["components"]["local_bus"]["ok"] is True
            assert ready["components"]["uplink"] == {"ok": True, "essential": False, "configured": False, "backlog": 0}
            bus.stop()
            body = await until(lambda: get(base + "/readyz"), 503)
            assert body["components"]["local_bus"]["ok"] is False
            assert (await get(base + "/livez"))[0] == 200
    finally:
        bus.stop()
