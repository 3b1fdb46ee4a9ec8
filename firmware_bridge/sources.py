"""Supervisor components (tier SOURCE) that turn configured devices into Samples.

:func:`make_source` is the one entry point the edge daemon calls per
``[[devices]]`` table. Each source runs its transport, feeds the received bytes
to the driver's sans-IO codec with the receive times taken where the bytes
arrived, and hands every Sample to ``emit`` and every technical condition
(connected, disconnected, silent, sensor_off, probe_fault, low_signal) to
``emit_event``, synchronously on the event loop (no queue on the hot path).
A codec bug never kills the source: the exception is logged, counted, and the
codec is recreated (the next frame resynchronises).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from clinical.sample import DeviceEvent, Sample
from firmware_bridge.codec import Decoded, Decoder
from firmware_bridge.config import DeviceConfig, MasimoConfig, NoninConfig, PhilipsMibConfig, SerialDeviceConfig
from firmware_bridge.serial_transport import SerialLink, SerialSettings
from runtime.logs import get_logger
from runtime.supervisor import Component, Tier

log = get_logger("firmware_bridge.sources")

EmitSample = Callable[[Sample], None]
EmitEvent = Callable[[DeviceEvent], None]


@runtime_checkable
class ActiveDecoder(Decoder, Protocol):
    """A codec that also talks: it tells the transport what to send and when (Philips MIB)."""

    def connection_made(self, now_mono: float) -> None: ...

    def tick(self, now_mono: float) -> None: ...

    def data_to_send(self) -> bytes: ...


def make_decoder(cfg: SerialDeviceConfig) -> Decoder:
    if isinstance(cfg, MasimoConfig):
        from firmware_bridge.masimo import MasimoDecoder

        return MasimoDecoder(cfg.bed, cfg.id)
    if isinstance(cfg, NoninConfig):
        from firmware_bridge.nonin import NoninDecoder

        return NoninDecoder(cfg.bed, cfg.id)
    if isinstance(cfg, PhilipsMibConfig):
        from firmware_bridge.philips_session import PhilipsSession

        return PhilipsSession(cfg.bed, cfg.id, poll_interval_s=cfg.poll_interval_s, extended=cfg.extended_poll)
    raise ValueError(f"no serial decoder for driver {cfg.driver!r}")


class SerialDeviceSource:
    """One serial device: SerialLink -> codec -> emit / emit_event."""

    tier = Tier.SOURCE
    essential = False  # see runtime/supervisor.py

    def __init__(self, cfg: SerialDeviceConfig, emit: EmitSample, emit_event: EmitEvent,
                 decoder_factory: Callable[[], Decoder] | None = None) -> None:
        self.cfg = cfg
        self.name = f"device[{cfg.id}]"
        self.emit = emit
        self.emit_event = emit_event
        self._factory = decoder_factory or (lambda: make_decoder(cfg))
        self.decoder: Decoder
        self._active: ActiveDecoder | None = None  # the decoder again when it talks back (Philips): checked once
        self._new_decoder()
        self.codec_errors = 0
        self.link = SerialLink(
            cfg.port,
            SerialSettings(cfg.baudrate, cfg.bytesize, cfg.parity, cfg.stopbits),
            self._on_data,
            self._on_condition,
            silence_s=cfg.silence_timeout_s,
            backoff_initial_s=cfg.reconnect_initial_s,
            backoff_max_s=cfg.reconnect_max_s,
            name=cfg.id,
        )
        self.link.add_open_callback(self._on_open)
        self._running = False

    def _new_decoder(self) -> None:
        self.decoder = self._factory()
        # isinstance() against a runtime-checkable Protocol costs more than decoding a line: do it once here
        self._active = self.decoder if isinstance(self.decoder, ActiveDecoder) else None

    def _reset_decoder(self) -> None:
        """After a codec error: a fresh decoder; an active one (Philips) re-associates at once if the port is open."""
        self.codec_errors += 1
        log.error("codec_error", exc=True, device=self.cfg.id, bed=self.cfg.bed)
        self._new_decoder()
        if self.link.is_open:
            self._on_open()

    # -- callbacks from the link (event loop) ----------------------------------
    def _on_open(self) -> None:
        dec = self._active
        if dec is not None:
            dec.connection_made(time.monotonic())
            self._flush(dec)

    def _flush(self, dec: ActiveDecoder) -> None:
        out = dec.data_to_send()
        if out:
            self.link.write(out)

    def _on_data(self, data: bytes, mono: float, wall: float) -> None:
        try:
            items = self.decoder.feed(data, mono, wall)
        except Exception:
            self._reset_decoder()
            return
        self._deliver(items)
        if self._active is not None:
            self._flush(self._active)

    def _deliver(self, items: list[Decoded]) -> None:
        emit, emit_event = self.emit, self.emit_event
        for item in items:
            if isinstance(item, Sample):
                emit(item)
            else:
                emit_event(item)

    def _on_condition(self, condition: str, active: bool, detail: str) -> None:
        self.emit_event(DeviceEvent(self.cfg.bed, self.cfg.id, condition, active, time.monotonic(), time.time(),
                                    "", detail))

    # -- Component -------------------------------------------------------------
    async def start(self) -> None:
        """Nothing to wait for: a device that is unplugged at start is a technical alarm, not a crash."""

    async def run(self) -> None:
        self._running = True
        ticker = asyncio.create_task(self._tick_loop(), name=f"pulsegate[{self.name}].tick")
        try:
            await self.link.run()
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            self._running = False

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            dec = self._active
            if dec is not None and self.link.is_open:
                try:
                    dec.tick(time.monotonic())
                except Exception:
                    self._reset_decoder()
                    continue
                self._flush(dec)

    async def stop(self) -> None:
        self.link.stop()


def make_source(cfg: DeviceConfig, emit: EmitSample, emit_event: EmitEvent) -> Component:
    """The supervisor component (tier SOURCE) for one configured device."""
    if isinstance(cfg, PhilipsMibConfig | MasimoConfig | NoninConfig):
        return SerialDeviceSource(cfg, emit, emit_event)
    if cfg.driver == "hl7_mllp":
        from firmware_bridge.mllp_server import MllpSource

        return MllpSource(cfg, emit, emit_event)
    if cfg.driver == "wearable_mqtt":
        from firmware_bridge.mqtt_wearables import WearableMqttSource

        return WearableMqttSource(cfg, emit, emit_event)
    raise ValueError(f"unsupported driver {cfg.driver!r}")
