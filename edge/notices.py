"""Pre-arrival notices (NEMSIS eDisposition.24/25): what the ambulance tells the receiving hospital.

The crew (crew page or the vehicle's ePCR on the local bus) picks a hospital
from the configured list, a presenting-complaint category (STEMI, stroke,
trauma, sepsis, other) and the bed (the stretcher's monitor). :class:`NoticeSender`
then sends a :class:`wire.messages.Notice` on the ``notices`` stream (outbox
lane 0: never throttled by the budget, never dropped by the quota) and an
update, with the same ``notice_id`` and the next ``rev``, whenever the patient
changes:

- NEWS2 changed, or the set of open alarms changed: at once (``min_gap_s`` 2 s
  between updates);
- a vital moved by more than its step (HR 10/min, SpO2 3 %, RR 4/min, systolic
  BP 15 mmHg, temperature 0.5 C) since the last revision: after ``min_gap_s``;
- the ETA moved by more than 2 minutes: after ``eta_gap_s`` (30 s);
- otherwise a refresh every ``refresh_s`` (300 s) so the board's "last heard" stays honest.

A notice is about 550 bytes of MessagePack; on a 64 kB/hour budget the
refresh and the ETA step are what keep a stable patient's notices near 10 kB/hour.

The notice carries the pseudonym, never a patient reference, and no free text.
The ED's acknowledgement comes back as a :class:`wire.messages.NoticeAck`
(:meth:`NoticeSender.on_ack`).
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.position import PositionTracker
from wire.messages import COMPLAINTS, VERSION, Complaint, Message, Notice, NoticeAck, NoticeAlarm, NoticeVital

Publish = Callable[[str, Message], None]
STEPS = {"heart_rate": 10.0, "pulse_rate": 10.0, "spo2": 3.0, "resp_rate": 4.0, "nibp_sys": 15.0,
         "nibp_dia": 10.0, "temperature": 0.5}
SENT_VITALS = ("heart_rate", "pulse_rate", "spo2", "resp_rate", "nibp_sys", "nibp_dia", "temperature")


class NoticeError(ValueError):
    pass


@dataclass
class _Current:
    notice_id: str
    hospital: str
    complaint: Complaint
    bed: str
    t_alert: int
    rev: int = 0
    state: str = "active"
    sent_at: float = 0.0  # monotonic
    sent_mono: dict[int, float] = field(default_factory=dict)  # rev -> monotonic time it was handed to the outbox
    vitals: dict[str, float] = field(default_factory=dict)
    news2: int | None = None
    alarms: frozenset[str] = frozenset()
    eta_s: int | None = None
    acked_rev: int = 0
    acked_at: float | None = None
    acked_by: str = ""


class NoticeSender:
    def __init__(self, gateway: str, publish: Publish, snapshot: Callable[[], dict[str, Any]],
                 patient_of: Callable[[str], str], tracker: PositionTracker,
                 hospitals: dict[str, tuple[float, float]], min_gap_s: float = 2.0, eta_gap_s: float = 30.0,
                 refresh_s: float = 300.0, clock: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.gateway = gateway
        self.publish = publish
        self.snapshot = snapshot
        self.patient_of = patient_of
        self.tracker = tracker
        self.hospitals = hospitals
        self.min_gap_s = min_gap_s
        self.eta_gap_s = eta_gap_s
        self.refresh_s = refresh_s
        self.clock = clock
        self.mono = mono
        self.current: _Current | None = None
        self.sent = 0
        self.acks = 0
        self.rejected_acks = 0
        self._news2: deque[tuple[int, int]] = deque(maxlen=6)
        self.on_change: Callable[[], None] | None = None  # the crew page and the ePCR feed push on this

    # ---- crew actions ---------------------------------------------------------------------------------
    def request(self, hospital: str, complaint: str, bed: str) -> dict[str, Any]:
        """Start (or re-target) a notice. Raises NoticeError for anything not in the fixed lists."""
        if hospital not in self.hospitals:
            raise NoticeError(f"unknown hospital {hospital[:40]!r}")
        if complaint not in COMPLAINTS:
            raise NoticeError(f"complaint must be one of {', '.join(COMPLAINTS)}")
        beds = {b["bed"] for b in self.snapshot().get("beds", [])}
        if bed not in beds:
            raise NoticeError(f"unknown bed {bed[:40]!r}")
        cur = self.current
        if cur is not None and cur.state == "active" and cur.hospital == hospital:
            cur.complaint, cur.bed = complaint, bed  # type: ignore[assignment]
        else:
            if cur is not None and cur.state == "active":
                self._send(cur, "cancelled")  # re-targeted to another hospital: the first one stands down
            cur = self.current = _Current(secrets.token_hex(8), hospital, complaint, bed,  # type: ignore[arg-type]
                                          int(self.clock() * 1e9))
            self._news2.clear()
        self._send(cur, "active")
        return self.state()

    def finish(self, state: str) -> dict[str, Any]:
        """``arrived`` (handover at the ED) or ``cancelled``."""
        if state not in ("arrived", "cancelled"):
            raise NoticeError("state must be arrived or cancelled")
        cur = self.current
        if cur is None or cur.state != "active":
            raise NoticeError("no active notice")
        self._send(cur, state)
        return self.state()

    def on_ack(self, ack: NoticeAck) -> None:
        cur = self.current
        if cur is None or ack.notice_id != cur.notice_id or ack.hospital != cur.hospital or ack.rev > cur.rev:
            self.rejected_acks += 1
            return
        if ack.rev >= cur.acked_rev:
            cur.acked_rev, cur.acked_at, cur.acked_by = ack.rev, ack.t / 1e9, ack.by
            self.acks += 1
            self._changed()

    # ---- the patient changes --------------------------------------------------------------------------
    def tick(self) -> None:
        cur = self.current
        if cur is None or cur.state != "active":
            return
        vitals, news2, alarms = self._observe(cur.bed)
        now = self.mono()
        self._trend(news2)
        since = now - cur.sent_at
        eta = self._eta(cur.hospital)
        eta_s = eta[0] if eta else None
        urgent = news2 != cur.news2 or alarms != cur.alarms
        moved = any(abs(vitals.get(k, v) - v) > STEPS.get(k, float("inf")) for k, v in cur.vitals.items()) or (
            set(vitals) - set(cur.vitals))
        eta_moved = (eta_s is not None and (cur.eta_s is None or abs(eta_s - cur.eta_s) > 120))
        if ((urgent or moved) and since >= self.min_gap_s) or (eta_moved and since >= self.eta_gap_s) \
                or since >= self.refresh_s:
            self._send(cur, "active")

    def _trend(self, news2: int | None) -> None:
        if news2 is not None and (not self._news2 or self._news2[-1][1] != news2):
            self._news2.append((int(self.clock()), news2))

    def _observe(self, bed: str) -> tuple[dict[str, float], int | None, frozenset[str]]:
        snap = self.snapshot()
        b = next((x for x in snap.get("beds", []) if x["bed"] == bed), None)
        vitals: dict[str, float] = {}
        news2 = None
        if b is not None:
            news2 = b.get("news2")
            for k, v in b.get("values", {}).items():
                if k in SENT_VITALS and not v.get("stale"):
                    vitals[k] = float(v["v"])
        alarms = frozenset(a["alarm_id"] for a in snap.get("alarms", []) if a.get("bed") == bed)
        return vitals, news2, alarms

    def _eta(self, hospital: str) -> tuple[int, int] | None:
        return self.tracker.eta(self.hospitals[hospital], self.clock())

    def _send(self, cur: _Current, state: str) -> None:
        vitals, news2, alarm_ids = self._observe(cur.bed)
        self._trend(news2)
        snap_alarms = [a for a in self.snapshot().get("alarms", []) if a.get("bed") == cur.bed]
        eta = self._eta(cur.hospital)
        now_ns = int(self.clock() * 1e9)
        cur.rev += 1
        cur.state = state
        cur.vitals, cur.news2, cur.alarms = vitals, news2, alarm_ids
        cur.eta_s = eta[0] if eta else None
        cur.sent_at = self.mono()
        cur.sent_mono[cur.rev] = cur.sent_at
        if len(cur.sent_mono) > 64:
            cur.sent_mono.pop(min(cur.sent_mono))
        msg = Notice(
            v=VERSION, gw=self.gateway, seq=0, notice_id=cur.notice_id, rev=cur.rev, t=now_ns, t_alert=cur.t_alert,
            hospital=cur.hospital, complaint=cur.complaint, bed=cur.bed, patient=self.patient_of(cur.bed),
            state=state,  # type: ignore[arg-type]
            eta_s=cur.eta_s, distance_m=eta[1] if eta else None, position=self.tracker.position(),
            vitals=[NoticeVital(k, round(v, 1)) for k, v in sorted(vitals.items())],
            news2=list(self._news2),
            alarms=[NoticeAlarm(str(a["priority"]), str(a["condition"]), int(float(a["t"]))) for a in snap_alarms[:4]],
        )
        self.publish("notices", msg)
        self.sent += 1
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def state(self) -> dict[str, Any]:
        """JSON for the crew page and the ePCR: what was sent, and whether the ED acknowledged it."""
        cur = self.current
        pos = self.tracker.position()
        out: dict[str, Any] = {
            "hospitals": sorted(self.hospitals), "complaints": list(COMPLAINTS),
            "beds": sorted(b["bed"] for b in self.snapshot().get("beds", [])),
            "position": None if pos is None else {"lat": pos.lat, "lon": pos.lon, "speed_kmh": pos.speed_kmh,
                                                   "fix": pos.fix},
            "notice": None,
        }
        if cur is not None:
            out["notice"] = {
                "notice_id": cur.notice_id, "rev": cur.rev, "state": cur.state, "hospital": cur.hospital,
                "complaint": cur.complaint, "bed": cur.bed, "eta_s": cur.eta_s, "eta_method": "straight-line",
                "news2": cur.news2, "open_alarms": len(cur.alarms), "acked_rev": cur.acked_rev,
                "acked": cur.acked_rev > 0, "acked_at": cur.acked_at, "acked_by": cur.acked_by,
            }
        return out
