"""Nurse verdicts and clinical events on the gateway: acknowledge with a verdict, record an event, send both up.

:class:`Feedback` is used by the nurse page (POST /nurse/api/ack with ``verdict``, POST /nurse/api/event)
and by :class:`LocalActions`, the local MQTT alarm API for nurse-call systems:

    pulsegate/local/{gateway}/actions/ack     in  {"alarm_id", "by", "verdict"?}
    pulsegate/local/{gateway}/actions/event   in  {"bed", "code", "t"?, "by"}
    pulsegate/local/{gateway}/actions/result  out {"action", "ok", "alarm_id"?, "verdict"?, "verdict_rejected"?,
                                                   "error"?} (QoS 1, not retained)

On the local bus the broker authenticates the nurse-call system and its ACL decides who may publish to
``actions/``; ``by`` is the staff login the system reports, recorded as ``{by}@nurse-call``.

The verdict check is clinical/feedback.py: a verdict with free text or an identifier is rejected and
counted (``verdicts_rejected`` by reason) and the acknowledgement still happens. Accepted verdicts and
events go up as :class:`wire.messages.Verdict` / :class:`wire.messages.ClinicalEvent` on the events
stream, the patient as the gateway's pseudonym.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from clinical.alarms.manager import USER, AlarmActionError
from clinical.alarms.model import Alarm
from clinical.feedback import EventError, check_event, check_verdict
from clinical.stage import ClinicalStage
from edge.pseudonym import Pseudonymizer
from runtime.logs import get_logger
from runtime.supervisor import Tier
from runtime.tasks import cancel_and_wait
from wire.messages import VERSION, ClinicalEvent, Message, Verdict

log = get_logger("edge.feedback")
Publish = Callable[[str, Message], None]
MAX_ACTION_BYTES = 2048


def actions_topic(gateway: str, leaf: str) -> str:
    return f"pulsegate/local/{gateway}/actions/{leaf}"


class Feedback:
    def __init__(self, gateway: str, stage: ClinicalStage, pseudonyms: Pseudonymizer, publish: Publish,
                 patient_of: Callable[[str], str], wall: Callable[[], float] = time.time) -> None:
        self.gateway = gateway
        self.stage = stage
        self.pseudonyms = pseudonyms
        self.publish = publish
        self.patient_of = patient_of  # bed -> local patient reference ("" when none)
        self.wall = wall
        self.verdicts_sent = 0
        self.verdicts_rejected: Counter[str] = Counter()
        self.events_sent = 0
        self.events_rejected = 0

    def acknowledge(self, alarm_id: str, by: str, body: dict[str, Any]) -> dict[str, Any]:
        """Acknowledge (AlarmActionError as before), then the verdict, if any. Returns what happened."""
        check = check_verdict(body)
        alarm = self.stage.manager.get(alarm_id)  # the acknowledgement may clear it: take it first
        acked = self.stage.acknowledge(alarm_id, by)
        alarm = alarm or acked
        out: dict[str, Any] = {"alarm_id": alarm_id, "verdict": None}
        if check.rejected is not None:
            self.verdicts_rejected[check.rejected] += 1
            log.warning("verdict_rejected", reason=check.rejected, alarm_id=alarm_id)  # never the text itself
            out["verdict_rejected"] = check.rejected
        elif check.code is not None:
            self._send_verdict(alarm, check.code, by)
            out["verdict"] = check.code
        return out

    def _send_verdict(self, a: Alarm, code: str, by: str) -> None:
        self.publish("events", Verdict(
            v=VERSION, gw=self.gateway, seq=0, alarm_id=a.alarm_id, bed=a.bed,
            patient=self.pseudonyms.pseudonym(a.patient), t=int(a.t_wall * 1e9), at=int(self.wall() * 1e9),
            verdict=code, source=a.source, condition=a.condition,  # type: ignore[arg-type]
            priority=a.priority.label, by=by))  # type: ignore[arg-type]
        self.verdicts_sent += 1
        log.info("verdict", alarm_id=a.alarm_id, bed=a.bed, verdict=code, by=by)

    def record_event(self, body: dict[str, Any], by: str) -> dict[str, Any]:
        """Record a clinical event; EventError (counted) when it is not one."""
        now = self.wall()
        try:
            bed, code, t = check_event(body, now)
            if bed not in self.stage.beds:
                raise EventError("no such bed")
        except EventError:
            self.events_rejected += 1
            raise
        self.publish("events", ClinicalEvent(
            v=VERSION, gw=self.gateway, seq=0, bed=bed, patient=self.pseudonyms.pseudonym(self.patient_of(bed)),
            t=int(t * 1e9), code=code, recorded=int(now * 1e9), by=by))  # type: ignore[arg-type]
        self.events_sent += 1
        log.info("clinical_event", bed=bed, code=code, by=by)
        return {"bed": bed, "code": code, "t": t}

    def stats(self) -> dict[str, int]:
        return {"verdicts_sent": self.verdicts_sent, "verdicts_rejected": sum(self.verdicts_rejected.values()),
                "events_sent": self.events_sent, "events_rejected": self.events_rejected}


class LocalActions:
    """The local MQTT alarm API (acknowledge with a verdict, record an event); not essential, reconnects."""

    name = "local-actions"
    tier = Tier.PIPELINE
    essential = False

    def __init__(self, feedback: Feedback, host: str, port: int, username: str | None = None,
                 password: str | None = None) -> None:
        self.feedback = feedback
        self.gateway = feedback.gateway
        self.host, self.port, self.username, self.password = host, port, username, password
        self.handled = 0
        self.refused = 0
        self._stop = asyncio.Event()
        self.subscribed = asyncio.Event()

    def handle(self, leaf: str, payload: bytes) -> dict[str, Any]:
        """One action message -> the result published back (also when it is refused)."""
        action = "acknowledge" if leaf == "ack" else "event"
        try:
            if len(payload) > MAX_ACTION_BYTES:
                raise ValueError("payload too large")
            body = json.loads(payload)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            by = body.pop("by", None)
            if not isinstance(by, str) or not USER.fullmatch(by) or len(by) > 100:
                raise ValueError("by must be the staff login (1-100 of A-Z a-z 0-9 . _ @ -)")
            who = f"{by}@nurse-call"
            if leaf == "ack":
                out = self.feedback.acknowledge(str(body.get("alarm_id", ""))[:128], who, body)
            else:
                out = self.feedback.record_event(body, who)
        except (ValueError, AlarmActionError) as exc:  # EventError and JSON errors are ValueErrors
            self.refused += 1
            msg = str(exc) if isinstance(exc, AlarmActionError | EventError) or "by must" in str(exc) \
                else "not a valid JSON action"
            return {"action": action, "ok": False, "error": msg[:200]}
        self.handled += 1
        return {"action": action, "ok": True, **out}

    async def start(self) -> None:
        self._stop.clear()

    async def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        import aiomqtt

        while not self._stop.is_set():
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=f"pg-{self.gateway}-actions",
                                          username=self.username, password=self.password, timeout=10) as client:
                    await client.subscribe(actions_topic(self.gateway, "ack"), qos=1)
                    await client.subscribe(actions_topic(self.gateway, "event"), qos=1)
                    self.subscribed.set()
                    pump = asyncio.ensure_future(self._pump(client))
                    stop = asyncio.ensure_future(self._stop.wait())
                    try:
                        await asyncio.wait({pump, stop}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        await cancel_and_wait([pump])
                        stop.cancel()
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                log.warning("local_actions_link_down", error=str(exc)[:200])
                try:
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                except TimeoutError:
                    pass

    async def _pump(self, client: Any) -> None:
        async for message in client.messages:
            leaf = str(message.topic).rsplit("/", 1)[-1]
            payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
            if leaf not in ("ack", "event") or not payload:
                continue
            result = self.handle(leaf, bytes(payload))
            await client.publish(actions_topic(self.gateway, "result"), json.dumps(result), qos=1)
