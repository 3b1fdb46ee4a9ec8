"""Emulated gateways for staged rollouts: the gateway's real model slots and shadow scorer, fast beds.

Each :class:`EmulatedGateway` runs the gateway's own :class:`edge.model_slots.ModelSlots` (offers and
signed rollout commands from the real cloud broker, verification against its trusted keys, shadow,
promote, roll back, ShadowReports) around a :class:`edge.shadow.ShadowScorer` whose active model is a
real ``VitalsAnomalyModel`` on LiteRT. Its beds are real ``BedState`` objects fed one sample per minute
and parameter from synthetic scenarios on an accelerated clock (one minute per ``tick_s``), and the
scorer is called once per tick with every bed, as the gateway's anomaly sweep does. Its uplink is a
plain MQTT publisher of the wire messages on ``pg/v1/{site}/{gw}/{stream}`` (no outbox: the rollout,
not delivery, is under test). Used by tests/test_rollout.py and ``pulsegate demo --learning-loop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clinical.anomaly import VitalsAnomalyModel
from clinical.bedstate import BedState
from clinical.sample import Sample
from cloud.training.scenarios import PARAMS, GeneratorParams, generate
from edge.model_slots import ModelSlots
from edge.shadow import ShadowScorer
from runtime.tasks import cancel_and_wait
from wire import codec, topics
from wire.messages import Message


class EmulatedGateway:
    def __init__(self, gateway: str, site: str, state_dir: Path, active_dir: Path, trusted_keys: Sequence[Path],
                 host: str, port: int, *, beds: int = 6, seed: int = 11, tick_s: float = 0.2,
                 report_every_s: float = 1.0, shadow_rounds: int = 10**9) -> None:
        self.gateway, self.site, self.host, self.port = gateway, site, host, port
        self.tick_s = tick_s
        self.active = VitalsAnomalyModel(active_dir, 1, list(trusted_keys))
        self.scorer = ShadowScorer(self.active, rounds=shadow_rounds)
        self.queue: asyncio.Queue[tuple[str, Message]] = asyncio.Queue(10_000)
        self.slots = ModelSlots(state_dir, gateway, site, list(trusted_keys), self.publish, host=host, port=port,
                                shadow=self.scorer, report_every_s=report_every_s,
                                versions={self.active.manifest.name: self.active.version})
        self.beds = [BedState(f"bed-{k + 1:02d}") for k in range(beds)]
        gp = GeneratorParams(hours=12.0, dt=60.0)
        self.minutes = [self._minute_means(generate(seed, k, gp)) for k in range(beds)]
        self.clock = 0.0
        self.minute = 0
        self.ticks = 0
        self._stop = asyncio.Event()

    @staticmethod
    def _minute_means(sc: object) -> np.ndarray:
        vals = np.stack([np.where(sc.quality[p] == 0, sc.values[p], np.nan) for p in PARAMS], 1)  # type: ignore[attr-defined]
        return vals.astype(np.float64)

    def publish(self, stream: str, msg: Message) -> None:
        msg.gw = self.gateway
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait((stream, msg))

    def step(self) -> None:
        """One accelerated minute: a sample per bed and parameter, then one scoring round over all beds."""
        self.clock += 60.0
        for b, series in zip(self.beds, self.minutes, strict=True):
            row = series[self.minute % len(series)]
            for p, v in zip(PARAMS, row, strict=True):
                if not math.isnan(v):
                    b.update(Sample(b.bed, p, float(v), "", self.clock, self.clock))
            b.roll(self.clock + 0.5)
        self.minute += 1
        ready = [b for b in self.beds if b.buckets_filled >= self.scorer.min_buckets]
        if ready:
            self.scorer.score(ready)
        self.ticks += 1

    async def _ticker(self) -> None:
        while not self._stop.is_set():
            self.step()
            await asyncio.sleep(self.tick_s)

    async def _uplink(self) -> None:
        import aiomqtt

        while not self._stop.is_set():
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=f"pg-{self.gateway}-uplink-emu",
                                          timeout=10) as client:
                    while True:
                        stream, msg = await self.queue.get()
                        await client.publish(topics.uplink(self.site, self.gateway, stream), codec.encode(msg), qos=1)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.5)

    async def run(self) -> None:
        await self.slots.start()
        tasks = [asyncio.create_task(self._ticker(), name=f"{self.gateway}-tick"),
                 asyncio.create_task(self._uplink(), name=f"{self.gateway}-uplink"),
                 asyncio.create_task(self.slots.run(), name=f"{self.gateway}-slots")]
        try:
            await self._stop.wait()
        finally:
            await self.slots.stop()  # the slots end their MQTT session themselves
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(tasks[2]), 10)
            await cancel_and_wait(tasks)

    def stop(self) -> None:
        self._stop.set()

    @property
    def active_version(self) -> str:
        return self.scorer.active.version
