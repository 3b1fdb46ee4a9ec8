"""BLE wearable emulator: publishes GATT characteristic values to MQTT like a BLE-to-MQTT bridge.

Each emulated wearable sends a Heart Rate Measurement (0x2A37, with contact
status and RR intervals), a PLX continuous measurement (0x2A5F, with device and
sensor status) every ``period_s`` and a temperature (0x2A1C) every 30 s, on the
topics documented in :mod:`firmware_bridge.mqtt_wearables` (raw bytes, or the
JSON form with ``json=True``). Uses paho-mqtt in its own thread; ``stop()`` ends it.
"""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from firmware_bridge.emulators.scenarios import Scenario, VitalState
from firmware_bridge.gatt import (
    PLX_DS_DISCONNECTED,
    PLX_DS_ERRATIC,
    encode_hrm,
    encode_plx_continuous,
    encode_temperature,
)


def characteristic_values(s: VitalState, t: float, last_temp_t: float | None) -> list[tuple[str, bytes]]:
    """(uuid, value) pairs a wearable notifies at scenario time ``t``."""
    out: list[tuple[str, bytes]] = []
    if s.probe_off:
        out.append(("2a37", encode_hrm(0, contact=False)))
        out.append(("2a5f", encode_plx_continuous(float("nan"), float("nan"), None, PLX_DS_DISCONNECTED)))
    else:
        rr = 60.0 / s.hr
        out.append(("2a37", encode_hrm(round(s.hr), contact=True, rr_s=[rr])))
        out.append(("2a5f", encode_plx_continuous(round(s.spo2), round(s.hr), round(s.pi, 1),
                                                  PLX_DS_ERRATIC if s.artifact else 0)))
    if last_temp_t is None or t - last_temp_t >= 30.0:
        out.append(("2a1c", encode_temperature(round(s.temp, 1))))
    return out


class WearablePublisher:
    """A thread publishing ``devices`` (BLE ids) to ``{prefix}/{device}/{uuid}[/json]`` on host:port."""

    def __init__(self, host: str, port: int, scenario: Scenario, devices: list[str] | None = None,
                 prefix: str = "pulsegate/ble", period_s: float = 1.0, speed: float = 1.0,
                 json_form: bool = False, username: str | None = None, password: str | None = None) -> None:
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.scenario = scenario
        self.devices = devices or ["C4:7C:8D:6A:12:34"]
        self.prefix = prefix.rstrip("/")
        self.period_s = period_s
        self.speed = speed
        self.json_form = json_form
        self.published = 0
        self.paused = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"wearable-emulator[{host}:{port}]", daemon=True)

    def start(self) -> WearablePublisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ble-bridge-emu-{id(self):x}")
        if self.username:
            client.username_pw_set(self.username, self.password)
        t0 = time.monotonic()
        last_temp: float | None = None
        connected = False
        next_tick = time.monotonic()
        while not self._stop.is_set():
            if not connected:
                try:
                    client.connect(self.host, self.port, keepalive=30)
                    connected = True
                except OSError:
                    self._stop.wait(0.5)
                    continue
            now = time.monotonic()
            if now >= next_tick and not self.paused:
                t = (now - t0) * self.speed
                values = characteristic_values(self.scenario.at(t), t, last_temp)
                if any(u == "2a1c" for u, _ in values):
                    last_temp = t
                for dev in self.devices:
                    for uuid, value in values:
                        if self.json_form:
                            client.publish(f"{self.prefix}/{dev}/{uuid}/json",
                                           json.dumps({"hex": value.hex(), "ts": time.time()}), qos=1)
                        else:
                            client.publish(f"{self.prefix}/{dev}/{uuid}", value, qos=1)
                        self.published += 1
                next_tick = max(next_tick + self.period_s / self.speed, now)
            if client.loop(timeout=0.02) != mqtt.MQTT_ERR_SUCCESS:
                connected = False
        client.disconnect()
