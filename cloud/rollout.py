"""The staged rollout of one signed candidate (``pulsegate model rollout``): offer, watch, decide, record.

1. the first stage (cloud/rollout_plan.py) gets the signed model as a retained ModelOffer naming this
   rollout; its gateways verify it and run it in SHADOW beside the active model (edge/shadow.py), never
   letting it raise or hide an alarm, and report figures on their status stream (ShadowReport);
2. when every gateway of the started stages has reported figures that hold (cloud/rollout_plan.judge) and
   the stage has shadowed for ``dwell_s``, the next stage gets the offer; after the last stage (the whole
   fleet) held for its dwell, a signed ``promote`` goes to every gateway and each makes it active;
3. a report that does not hold (a crash, invalid outputs, a regression against the active model, a
   refused signature) or a gateway silent past ``report_timeout_s`` rolls the candidate back EVERYWHERE:
   a signed, retained ``rollback`` to every gateway of the fleet, offered or not, so none will take
   that version later.

Every decision (offer, next stage, promote, rollback) is recorded with its reason and figures: in the
result, in a JSON-lines audit file and, when given, in InfluxDB (measurement ``rollout_decisions``) where
the fleet API reads it. Commands are retained so a gateway that was offline acts on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.points import line
from cloud.rollout_plan import Criteria, holds, judge
from runtime.logs import get_logger
from wire import codec, topics
from wire.messages import ShadowReport
from wire.model_offer import encode_offer, offer_from_dir
from wire.rollout import RolloutCommand, sign_command

log = get_logger("cloud.rollout")
Write = Callable[[list[str]], Awaitable[object]]


@dataclass
class Broker:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None


@dataclass
class Rollout:
    model_dir: Path
    site: str
    stages: list[list[str]]
    key: Ed25519PrivateKey
    criteria: Criteria = field(default_factory=Criteria)
    broker: Broker = field(default_factory=Broker)
    audit_path: Path | None = None
    influx_write: Write | None = None
    rollout_id: str = field(default_factory=lambda: "r" + uuid.uuid4().hex[:12])
    poll_s: float = 0.5


class RolloutRun:
    def __init__(self, r: Rollout) -> None:
        self.r = r
        self.offer = offer_from_dir(r.model_dir)
        self.offer.rollout = r.rollout_id
        self.model, self.version = self.offer.name, self.offer.version
        self.fleet = [g for s in r.stages for g in s]
        self.reports: dict[str, ShadowReport] = {}
        self.report_at: dict[str, float] = {}
        self.stage = -1
        self.stage_started: list[float] = []
        self.decisions: list[dict[str, Any]] = []
        self.outcome = "running"
        self._t0 = time.monotonic()

    # -- decisions --------------------------------------------------------------------------------------------
    async def _decide(self, action: str, gateways: list[str], reason: str) -> None:
        now = time.time()
        d: dict[str, Any] = {"t": now, "rollout": self.r.rollout_id, "model": self.model, "version": self.version,
             "stage": self.stage, "action": action, "gateways": gateways, "reason": reason,
             "figures": {g: self._figures(g) for g in gateways if g in self.reports}}
        self.decisions.append(d)
        log.info("rollout_decision", rollout=self.r.rollout_id, action=action, stage=self.stage, reason=reason)
        if self.r.audit_path is not None:
            with self.r.audit_path.open("a") as f:
                f.write(json.dumps(d) + "\n")
        if self.r.influx_write is not None:
            with contextlib.suppress(Exception):  # the audit file has it; InfluxDB is for the dashboard
                await self.r.influx_write([line(
                    "rollout_decisions", {"rollout": self.r.rollout_id, "model": self.model, "action": action,
                                          "site": self.r.site},
                    {"version": self.version, "stage": self.stage, "gateways": ",".join(gateways), "reason": reason,
                     "figures": json.dumps(d["figures"], sort_keys=True)}, int(now * 1e9))])

    def _figures(self, g: str) -> dict[str, Any]:
        r = self.reports[g]
        return {"state": r.state, "bed_windows": r.bed_windows, "agreement": r.agreement,
                "cand_alarms": r.cand_alarms, "active_alarms": r.active_alarms, "invoke_ms_p50": r.invoke_ms_p50,
                "invoke_ms_max": r.invoke_ms_max, "errors": r.errors, "invalid": r.invalid,
                "cand_beds": r.cand_beds, "active_beds": r.active_beds, "both_beds": r.both_beds}

    # -- MQTT -------------------------------------------------------------------------------------------------
    async def _command(self, client: Any, action: str, reason: str) -> None:
        cmd = RolloutCommand(v=1, rollout=self.r.rollout_id, model=self.model, version=self.version,
                             action=action, t=time.time_ns(), reason=reason[:300])  # type: ignore[arg-type]
        payload = sign_command(cmd, self.r.key)
        for g in self.fleet:
            await client.publish(topics.model_cmd(self.r.site, g), payload, qos=1, retain=True)

    async def _next_stage(self, client: Any, reason: str) -> None:
        self.stage += 1
        gws = self.r.stages[self.stage]
        payload = encode_offer(self.offer)
        for g in gws:
            await client.publish(topics.models(self.r.site, g), payload, qos=1, retain=True)
        self.stage_started.append(time.monotonic())
        await self._decide("offer", gws, reason)

    def handle(self, topic: str, payload: bytes) -> None:
        try:
            _, gw, _ = topics.parse_uplink(topic)
            msg = codec.decode(payload)
        except (topics.TopicError, codec.WireError):
            return
        if isinstance(msg, ShadowReport) and msg.gw == gw and msg.rollout == self.r.rollout_id:
            self.reports[gw] = msg
            self.report_at[gw] = time.monotonic()

    def _problem(self, now: float) -> str | None:
        c = self.r.criteria
        for k in range(self.stage + 1):
            for g in self.r.stages[k]:
                rep = self.reports.get(g)
                if rep is not None:
                    why = judge(rep, c)
                    if why is not None:
                        return why
                last = self.report_at.get(g, self.stage_started[k])
                if now - last > c.report_timeout_s:
                    return f"{g}: no shadow report for {now - last:.0f} s (limit {c.report_timeout_s:g} s)"
        return None

    def _stage_holds(self, now: float) -> bool:
        c = self.r.criteria
        started = self.r.stages[: self.stage + 1]
        return now - self.stage_started[self.stage] >= c.dwell_s and all(
            holds(self.reports.get(g), c) for s in started for g in s)

    async def run(self, stop: asyncio.Event | None = None) -> dict[str, Any]:
        import aiomqtt

        b = self.r.broker
        tls = aiomqtt.TLSParameters(ca_certs=b.tls_ca) if b.tls_ca else None
        async with aiomqtt.Client(b.host, b.port, identifier=f"pg-rollout-{self.r.rollout_id}", username=b.username,
                                  password=b.password, tls_params=tls, timeout=10) as client:
            await client.subscribe(f"{topics.PREFIX}/{self.r.site}/+/status", qos=1)
            pump = asyncio.ensure_future(self._pump(client))
            try:
                await self._next_stage(client, f"canary: {len(self.r.stages[0])} of {len(self.fleet)} gateways")
                while self.outcome == "running" and not (stop is not None and stop.is_set()):
                    await asyncio.sleep(self.r.poll_s)
                    if pump.done():
                        pump.result()  # the subscription broke: raise
                    now = time.monotonic()
                    why = self._problem(now)
                    if why is not None:
                        await self._command(client, "rollback", why)
                        self.outcome = "rolled_back"
                        await self._decide("rollback", self.fleet, why)
                    elif self._stage_holds(now):
                        figures = f"stage {self.stage} held for {now - self.stage_started[self.stage]:.0f} s"
                        if self.stage + 1 < len(self.r.stages):
                            await self._next_stage(client, figures)
                        else:
                            await self._command(client, "promote", figures)
                            self.outcome = "promoted"
                            await self._decide("promote", self.fleet, figures + ": the whole fleet")
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await pump
        if self.outcome == "running":
            self.outcome = "stopped"
        return self.result()

    async def _pump(self, client: Any) -> None:
        async for m in client.messages:
            if isinstance(m.payload, bytes | bytearray):
                self.handle(str(m.topic), bytes(m.payload))

    def result(self) -> dict[str, Any]:
        return {"rollout": self.r.rollout_id, "model": self.model, "version": self.version,
                "outcome": self.outcome, "criteria": self.r.criteria.to_json(),
                "stages": [{"gateways": s, "started": k <= self.stage} for k, s in enumerate(self.r.stages)],
                "decisions": self.decisions, "reports": {g: self._figures(g) for g in sorted(self.reports)},
                "seconds": round(time.monotonic() - self._t0, 1)}
