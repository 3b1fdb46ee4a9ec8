"""Message schemas of contract v2 (msgspec Structs, MessagePack on the wire).

Every uplink message is one tagged Struct (tag field ``k``) carrying the
contract version ``v``, the gateway id ``gw``, the stream and a per-stream
sequence number ``seq``. (gateway, stream, seq) is the record's stable id: the
outbox assigns it once and a replay carries the same id.

Times are capture times in integer nanoseconds since the epoch (InfluxDB's
native precision), taken where the data was captured and never rewritten.

Patient references in these messages are always pseudonyms (HMAC, see
edge/pseudonym.py); the key never leaves the gateway.

Field names are short because the link is cellular: see docs/ARCHITECTURE.md
("Encoding") for the measured sizes and speeds that chose MessagePack.

Contract v2 adds delivery receipts (:class:`Receipt`, cloud -> gateway: which
sequence numbers the cloud has written) and the unreceipted count and age in
:class:`Status`. Every v1 message is a valid v2 message with ``v = 1``: a v2
ingest accepts both (``SUPPORTED``) and sends receipts only to gateways that
speak v2; a gateway that speaks v1 (``[uplink] receipts = false``) stamps its
messages ``v = 1`` and forgets a record at the broker's PUBACK, as before.
"""

from __future__ import annotations

from typing import Literal

import msgspec

VERSION = 2
V1 = 1
SUPPORTED = (V1, VERSION)  # contract versions a v2 peer accepts


class _Msg(msgspec.Struct, tag_field="k", forbid_unknown_fields=True, omit_defaults=True):
    v: int
    gw: str
    seq: int


class SummaryItem(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """Per bed and parameter over one interval: count, min, max, mean, last."""

    bed: str
    patient: str  # pseudonym
    param: str
    t: int  # start of interval, ns
    count: int
    min: float
    max: float
    mean: float
    last: float
    invalid: int = 0  # samples with quality flags in the interval


class Summary(_Msg, tag="sum"):
    interval_s: float
    items: list[SummaryItem]
    position: Position | None = None  # an ambulance's coarse position at the interval's end


class Score(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    bed: str
    patient: str
    t: int
    news2: int | None
    anomaly: float | None


class Scores(_Msg, tag="scr"):
    items: list[Score]


class Alarm(_Msg, tag="alm"):
    alarm_id: str
    bed: str
    patient: str
    t: int  # when the condition was raised (capture time of the triggering sample)
    state: Literal["raised", "escalated", "acknowledged", "silenced", "cleared"]
    priority: Literal["high", "medium", "low", "info"]
    kind: Literal["physiological", "technical"]
    source: str  # threshold | news2 | anomaly | device | finding
    condition: str
    score: float | None = None
    value: float | None = None
    param: str | None = None
    by: str | None = None  # the login name of whoever acknowledged or silenced (staff, never a patient)
    latency_ms: dict[str, float] = {}
    changed: int | None = None  # when this state change happened, ns (t stays the raise time)


class Event(_Msg, tag="evt"):
    t: int
    kind: str
    bed: str | None = None
    detail: dict[str, str | int | float | bool | None] = {}


class Gap(_Msg, tag="gap"):
    """Records the gateway dropped (disk quota) so the cloud knows what is missing."""

    t: int
    stream: str
    first_seq: int
    last_seq: int
    count: int
    reason: str


class Finding(_Msg, tag="fnd"):
    """An endoscopy finding: no pixels, only geometry and confidence."""

    t: int
    room: str
    present: bool
    confidence: float
    area: float  # fraction of the frame
    box: tuple[float, float, float, float] | None = None  # x, y, w, h in frame fractions


class Raw(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    bed: str
    patient: str
    param: str
    t: int
    value: float
    quality: int


class RawBatch(_Msg, tag="raw"):
    items: list[Raw]


class Status(_Msg, tag="sts"):
    t: int
    online: bool
    backlog: int = 0
    oldest_unsent_s: float = 0.0
    software: str = ""
    models: dict[str, str] = {}
    unreceipted: int = 0  # v2: published records the cloud has not receipted yet
    oldest_unreceipted_s: float = 0.0  # v2: age of the oldest of them


# ---- ambulance (issue 16): appended to the union, nothing above changes ----------------------------

COMPLAINTS = ("stemi", "stroke", "trauma", "sepsis", "other")
Complaint = Literal["stemi", "stroke", "trauma", "sepsis", "other"]


class Position(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A coarse fix: lat/lon rounded to 3 decimals (~110 m north-south), speed in km/h (integer)."""

    t: int  # fix time, ns
    lat: float
    lon: float
    speed_kmh: int
    fix: bool = True


class NoticeVital(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    param: str
    value: float  # latest valid value at the notice's time ``t``


class NoticeAlarm(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    priority: str
    condition: str
    t: int  # raised, s since the epoch (the notice is sent often on a metered link: kept small)


class Notice(_Msg, tag="ntc"):
    """Pre-arrival notice to a receiving hospital (NEMSIS eDisposition.24 destination team pre-arrival alert,
    eDisposition.25 its time = ``t_alert``). One ``notice_id`` per transport, ``rev`` grows with each update;
    ``state`` "cancelled" withdraws it. No free text anywhere: the complaint is a category."""

    notice_id: str
    rev: int
    t: int  # this revision, ns
    t_alert: int  # first alert (eDisposition.25), ns
    hospital: str
    complaint: Complaint
    bed: str
    patient: str  # pseudonym
    state: Literal["active", "arrived", "cancelled"] = "active"
    eta_s: int | None = None
    distance_m: int | None = None
    position: Position | None = None
    vitals: list[NoticeVital] = []
    news2: list[tuple[int, int]] = []  # (t s since the epoch, score) oldest first: the trend, at most 6
    alarms: list[NoticeAlarm] = []  # open alarms, highest priority first, at most 4


class NoticeAck(_Msg, tag="nak"):
    """The receiving ED acknowledged a notice (cloud -> ambulance gateway). ``by`` is a role, not a name."""

    notice_id: str
    rev: int  # the revision the ED saw
    t: int
    hospital: str
    by: str = "ed"


class Where(_Msg, tag="pos"):
    """The vehicle's coarse position, on the status stream (the ambulance's summaries carry it too)."""

    t: int
    position: Position


# ---- the learning loop (issue 12): appended to the union, nothing above changes ---------------------------
# Fixed codes only: a verdict or a clinical event never carries free text. docs/learning-loop.md
# ("Contract") says which gateway and cloud versions understand these tags.

VERDICTS = ("actionable", "not_actionable", "artifact", "already_known")
VerdictCode = Literal["actionable", "not_actionable", "artifact", "already_known"]
CLINICAL_EVENTS = ("rapid_response", "icu_transfer", "sepsis_pathway")
ClinicalEventCode = Literal["rapid_response", "icu_transfer", "sepsis_pathway"]


class Verdict(_Msg, tag="vrd"):
    """A nurse's one-tap verdict on an alarm, given with its acknowledgement (events stream)."""

    alarm_id: str
    bed: str
    patient: str  # pseudonym
    t: int  # when the alarm was raised (its capture time), ns: the label's place on the patient's timeline
    at: int  # when the verdict was given, ns
    verdict: VerdictCode
    source: str  # the alarm's source: threshold | news2 | anomaly | device ...
    condition: str
    priority: Literal["high", "medium", "low", "info"]
    by: str  # the login name of the nurse (staff, never a patient)


class ClinicalEvent(_Msg, tag="cev"):
    """A recorded clinical event with its time (events stream): what a deterioration led to."""

    bed: str
    patient: str  # pseudonym
    t: int  # when it happened, ns
    code: ClinicalEventCode
    recorded: int  # when it was recorded, ns
    by: str


class ShadowReport(_Msg, tag="shd"):
    """A candidate's figures in shadow during a staged rollout (status stream; edge/model_slots.py)."""

    t: int
    model: str
    version: str  # the candidate
    active: str  # the model whose alarms count meanwhile
    rollout: str
    state: Literal["shadow", "promoted", "rolled_back", "rejected"]
    rounds: int = 0
    bed_windows: int = 0  # bed-windows both models scored
    agreement: float = 1.0  # share of them with the same alarm decision
    cand_alarms: int = 0  # bed-windows the candidate would have alarmed on
    active_alarms: int = 0  # the same bed-windows the active model alarmed on
    invoke_ms_p50: float = 0.0  # the candidate's batch invoke time
    invoke_ms_max: float = 0.0
    errors: int = 0
    invalid: int = 0  # outputs that were not finite probabilities
    reason: str = ""
    cand_beds: int = 0  # beds the candidate alarmed on at least once in shadow
    active_beds: int = 0  # beds the active model alarmed on at least once
    both_beds: int = 0  # beds both alarmed on (each at some time: an earlier warning is not an extra alarm)


Message = (Summary | Scores | Alarm | Event | Gap | Finding | RawBatch | Status | Notice | NoticeAck | Where
           | Verdict | ClinicalEvent | ShadowReport)


class StreamReceipt(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """What the cloud has written of one stream: the run ``low..upto`` and the ranges above ``upto``.

    ``upto`` is the highest sequence number of the lowest contiguous run the ingest holds; ``above``
    are (first, last) ranges, ascending, all above ``upto + 1``. A receipt only ever names numbers the
    ingest has written (or that the gateway itself reported as a :class:`Gap`)."""

    stream: str
    low: int
    upto: int
    above: list[tuple[int, int]] = []


class Receipt(msgspec.Struct, tag="rct", tag_field="k", forbid_unknown_fields=True, omit_defaults=True):
    """Downlink, ingest -> gateway, QoS 1 on ``pg/v1/{site}/{gw}/receipts``: cumulative, so a lost receipt is
    covered by the next one. Not part of the uplink union: an ingest never accepts one as data."""

    v: int
    gw: str
    t: int  # when the ingest sent it, ns
    streams: list[StreamReceipt]
