"""The ambulance's GPS: NMEA 0183 over a serial port, or gpsd's JSON over TCP, -> ``on_fix(Fix)``.

Serial: the existing :class:`~firmware_bridge.serial_transport.SerialLink`
(reopens after an unplug, flags silence) feeding :class:`~firmware_bridge.nmea.NmeaDecoder`.
gpsd: ``?WATCH={"enable":true,"json":true}`` and TPV reports (``mode`` >= 2 is a
fix; ``speed`` in m/s); :class:`GpsdDecoder` is the sans-IO part.

Either way only ``on_fix`` leaves this module; the GPS raises no clinical
alarm (a lost fix is a state the notice shows, "position unknown").
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import Field

from firmware_bridge.nmea import Fix, NmeaDecoder
from firmware_bridge.serial_transport import SerialLink, SerialSettings
from runtime.configbase import Section
from runtime.logs import get_logger
from runtime.supervisor import Tier

log = get_logger("firmware_bridge.gps")
OnFix = Callable[[Fix], None]


class GpsConfig(Section):
    """``[ambulance.gps]``: ``source = "serial"`` (``port``, ``baudrate``) or ``"gpsd"`` (``host``, ``gpsd_port``)."""

    source: Literal["serial", "gpsd"] = "serial"
    port: str = "/dev/ttyACM0"
    baudrate: Annotated[int, Field(ge=1200, le=921600)] = 4800  # NMEA 0183 default; USB receivers often 9600
    host: str = "127.0.0.1"
    gpsd_port: Annotated[int, Field(ge=1, le=65535)] = 2947
    silence_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0


class GpsdDecoder:
    """Lines of gpsd JSON -> fixes. Bad JSON or reports are counted in ``rejected``."""

    def __init__(self) -> None:
        self._buf = b""
        self.rejected: Counter[str] = Counter()

    def feed(self, data: bytes, recv_wall: float) -> list[Fix]:
        self._buf += data
        out: list[Fix] = []
        *lines, self._buf = self._buf.split(b"\n")
        if len(self._buf) > 65536:
            self._buf = b""
            self.rejected["overlong"] += 1
        for line in lines:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                self.rejected["json"] += 1
                continue
            if not isinstance(obj, dict) or obj.get("class") != "TPV":
                continue
            try:
                mode = int(obj.get("mode", 0))
                if mode < 2:
                    out.append(Fix(recv_wall, False, kind="TPV"))
                    continue
                speed = obj.get("speed")
                track = obj.get("track")
                out.append(Fix(recv_wall, True, float(obj["lat"]), float(obj["lon"]),
                               None if speed is None else float(speed) * 3.6,
                               None if track is None else float(track), str(obj.get("time", "")), "TPV"))
            except (KeyError, TypeError, ValueError):
                self.rejected["field"] += 1
        return out


class GpsSource:
    """A supervisor component (tier SOURCE, not essential) feeding fixes to ``on_fix``."""

    tier = Tier.SOURCE
    essential = False
    name = "gps"

    def __init__(self, cfg: GpsConfig, on_fix: OnFix) -> None:
        self.cfg = cfg
        self.on_fix = on_fix
        self.fixes = 0
        self.no_fix = 0
        self.connected = False
        self.nmea = NmeaDecoder()
        self.gpsd = GpsdDecoder()
        self._stop = asyncio.Event()
        self.link: SerialLink | None = None
        if cfg.source == "serial":
            self.link = SerialLink(cfg.port, SerialSettings(cfg.baudrate), self._on_serial, self._on_condition,
                                   silence_s=cfg.silence_timeout_s, name="gps")

    def _deliver(self, fixes: list[Fix]) -> None:
        for f in fixes:
            if f.valid:
                self.fixes += 1
            else:
                self.no_fix += 1
            self.on_fix(f)

    def _on_serial(self, data: bytes, mono: float, wall: float) -> None:
        self._deliver(self.nmea.feed(data, wall))

    def _on_condition(self, condition: str, active: bool, detail: str) -> None:
        if condition == "connected":
            self.connected = active
        elif condition == "disconnected":
            self.connected = not active
        if condition != "connected" and active:
            log.warning("gps_" + condition, detail=detail[:200])

    async def start(self) -> None:
        self._stop = asyncio.Event()

    async def run(self) -> None:
        if self.link is not None:
            await self.link.run()
            return
        backoff = 0.5
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.cfg.host, self.cfg.gpsd_port)
            except OSError as exc:
                log.warning("gpsd_connect_failed", host=self.cfg.host, port=self.cfg.gpsd_port, error=str(exc)[:120])
                await self._sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            self.connected = True
            writer.write(b'?WATCH={"enable":true,"json":true}\n')
            try:
                while not self._stop.is_set():
                    try:
                        data = await asyncio.wait_for(reader.read(4096), timeout=self.cfg.silence_timeout_s)
                    except TimeoutError:
                        log.warning("gps_silent", source="gpsd")
                        break
                    if not data:
                        break
                    self._deliver(self.gpsd.feed(data, time.time()))
            except OSError:
                pass
            finally:
                self.connected = False
                writer.close()
            await self._sleep(backoff)

    async def _sleep(self, s: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=s)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        self._stop.set()
        if self.link is not None:
            self.link.stop()
