"""BLE wearables relayed over the gateway's local MQTT broker by a BLE-to-MQTT bridge (tier SOURCE).

Topic contract (the bridge publishes, the gateway subscribes; QoS 0 or 1):

- ``{topic_prefix}/{device}/{uuid}``: payload = the raw characteristic value bytes,
  exactly as notified/indicated over GATT (e.g. ``0E 4B 80 00`` on ``.../2a37``).
- ``{topic_prefix}/{device}/{uuid}/json``: payload = UTF-8 JSON
  ``{"hex": "0e4b8000"}`` or ``{"b64": "Dk uAAA=="}``, optionally with
  ``"ts"`` (bridge receive time, epoch s; informational) and ``"rssi"``.

``device`` is the wearable's id as the bridge names it (BLE address like
``C4:7C:8D:6A:12:34`` or ``C4-7C-8D-6A-12-34``; matched case- and
separator-insensitively, and reported under the id as written in ``devices``);
``uuid`` the characteristic: ``2a37``, ``0x2A37`` or the full 128-bit form.
Supported: 0x2A37 heart rate, 0x2A5E/0x2A5F PLX spot-check and continuous, 0x2A35 blood pressure, 0x2A1C temperature
(:mod:`firmware_bridge.gatt`). ``devices`` in the config maps each wearable to a
bed; wearables not listed are counted and ignored (with an empty map every
wearable goes to ``bed``).

Conditions: ``disconnected`` (device = the source id) while the broker is
unreachable (reconnect with backoff); per wearable ``connected`` on its first
value and ``silent`` after ``silence_timeout_s`` without one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Callable

import aiomqtt

from clinical.sample import DeviceEvent, Sample
from firmware_bridge.config import WearableMqttConfig
from firmware_bridge.gatt import GattDecoder, uuid16
from runtime.configbase import read_optional_secret
from runtime.logs import get_logger
from runtime.supervisor import Tier

log = get_logger("firmware_bridge.wearables")


def normalise_device(dev: str) -> str:
    return "".join(ch for ch in dev.upper() if ch.isalnum())


def parse_payload(suffix_json: bool, payload: bytes) -> bytes | None:
    """Raw characteristic bytes from a raw or JSON payload; None when malformed."""
    if not suffix_json:
        return payload
    try:
        doc = json.loads(payload)
        if not isinstance(doc, dict):
            return None
        if isinstance(doc.get("hex"), str):
            return bytes.fromhex(doc["hex"])
        if isinstance(doc.get("b64"), str):
            return base64.b64decode(doc["b64"], validate=True)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return None


MAX_UNMAPPED_DEVICES = 16  # without a ``devices`` map, at most this many wearables are followed for the bed


class WearableMqttSource:
    """Subscribe to the bridge's topics on the local broker; one GattDecoder per wearable."""

    tier = Tier.SOURCE
    essential = False  # see runtime/supervisor.py

    def __init__(self, cfg: WearableMqttConfig, emit: Callable[[Sample], None],
                 emit_event: Callable[[DeviceEvent], None]) -> None:
        self.cfg = cfg
        self.name = f"device[{cfg.id}]"
        self._password = read_optional_secret(cfg.password_file)
        self.emit = emit
        self.emit_event = emit_event
        self.beds = {normalise_device(k): v for k, v in cfg.devices.items()}
        self.names = {normalise_device(k): k for k in cfg.devices}  # device ids as the operator wrote them
        self.decoders: dict[str, GattDecoder] = {}
        self.unknown_devices = 0
        self.bad_messages = 0
        self.messages = 0
        self.connects = 0
        self._last_rx: dict[str, float] = {}
        self._silent: set[str] = set()
        self._disconnected = False
        self._stop = asyncio.Event()
        self.subscribed = asyncio.Event()

    def _event(self, device: str, bed: str, condition: str, active: bool, detail: str = "") -> None:
        self.emit_event(DeviceEvent(bed, device, condition, active, time.monotonic(), time.time(), "", detail))

    def handle(self, topic: str, payload: bytes, mono: float, wall: float) -> None:
        """One MQTT message (public so the hot path can be tested and benchmarked without a broker)."""
        prefix = self.cfg.topic_prefix.rstrip("/") + "/"
        if not topic.startswith(prefix):
            self.bad_messages += 1
            return
        parts = topic[len(prefix) :].split("/")
        is_json = len(parts) == 3 and parts[2] == "json"
        if len(parts) != 2 and not is_json:
            self.bad_messages += 1
            return
        dev = normalise_device(parts[0])
        bed = self.beds.get(dev) if self.beds else self.cfg.bed
        if bed is None:
            self.unknown_devices += 1
            return
        try:
            uuid = uuid16(parts[1])
        except ValueError:
            self.bad_messages += 1
            return
        value = parse_payload(is_json, payload)
        if value is None:
            self.bad_messages += 1
            return
        dec = self.decoders.get(dev)
        if dec is None:
            if not self.beds and len(self.decoders) >= MAX_UNMAPPED_DEVICES:
                self.unknown_devices += 1  # no device map: bound what passing wearables can make us track
                return
            name = self.names.get(dev, parts[0])
            dec = self.decoders[dev] = GattDecoder(bed, name)
            self._event(name, bed, "connected", True, f"first value on 0x{uuid:04X}")
        self.messages += 1
        self._last_rx[dev] = mono
        if dev in self._silent:
            self._silent.discard(dev)
            self._event(dec.origin.device, bed, "silent", False)
        for item in dec.decode(uuid, value, mono, wall):
            if isinstance(item, Sample):
                self.emit(item)
            else:
                self.emit_event(item)

    async def start(self) -> None:
        """Nothing to wait for: a broker that is down at start is a technical condition, not a crash."""

    async def run(self) -> None:
        self._stop.clear()
        watch = asyncio.create_task(self._silence_loop(), name=f"pulsegate[{self.name}].silence")
        backoff = self.cfg.reconnect_initial_s
        try:
            while not self._stop.is_set():
                try:
                    await self._session()
                    backoff = self.cfg.reconnect_initial_s
                except aiomqtt.MqttError as exc:
                    self.subscribed.clear()
                    if not self._disconnected:
                        self._disconnected = True
                        self._event(self.cfg.id, self.cfg.bed, "disconnected", True, f"broker: {exc}")
                    log.warning("wearable_broker_lost", device=self.cfg.id, retry_in_s=backoff)
                    try:
                        await asyncio.wait_for(self._stop.wait(), backoff)
                    except TimeoutError:
                        pass
                    backoff = min(backoff * 2, self.cfg.reconnect_max_s)
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    async def _session(self) -> None:
        ident = f"pulsegate-{self.cfg.id}-{uuidlib.uuid4().hex[:6]}"
        async with aiomqtt.Client(self.cfg.host, self.cfg.port, identifier=ident, timeout=5,
                                  username=self.cfg.username, password=self._password) as client:
            prefix = self.cfg.topic_prefix.rstrip("/")
            await client.subscribe(f"{prefix}/+/+", qos=1)
            await client.subscribe(f"{prefix}/+/+/json", qos=1)
            self.connects += 1
            self.subscribed.set()
            if self._disconnected:
                self._disconnected = False
                self._event(self.cfg.id, self.cfg.bed, "disconnected", False)
            log.info("wearable_subscribed", device=self.cfg.id, prefix=prefix)
            stop_wait = asyncio.create_task(self._stop.wait())
            try:
                async for msg in _until(client.messages, stop_wait):
                    payload = msg.payload
                    if isinstance(payload, bytes | bytearray):
                        self.handle(msg.topic.value, bytes(payload), time.monotonic(), time.time())
            finally:
                stop_wait.cancel()

    async def _silence_loop(self) -> None:
        step = min(1.0, self.cfg.silence_timeout_s / 4)
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            for dev, last in self._last_rx.items():
                if dev not in self._silent and now - last >= self.cfg.silence_timeout_s:
                    self._silent.add(dev)
                    dec = self.decoders[dev]
                    self._event(dec.origin.device, dec.origin.bed, "silent", True, f"no value for {now - last:.0f} s")

    async def stop(self) -> None:
        self._stop.set()


async def _until(messages: aiomqtt.MessagesIterator, stop: asyncio.Task[bool]) -> AsyncIterator[aiomqtt.Message]:
    """Iterate MQTT messages until ``stop`` completes."""
    it = messages.__aiter__()
    while True:
        nxt: asyncio.Task[aiomqtt.Message] = asyncio.ensure_future(it.__anext__())
        done, _ = await asyncio.wait({nxt, stop}, return_when=asyncio.FIRST_COMPLETED)
        if nxt not in done:
            nxt.cancel()
            await asyncio.gather(nxt, return_exceptions=True)
            return
        yield nxt.result()
