"""MQTT topic scheme (the ``pg/v1`` tree; unchanged in contract v2 but for the receipts downlink).

Uplink (gateway -> cloud broker), one topic per stream of a gateway::

    pg/v1/{site}/{gateway}/{stream}      stream in STREAMS

Downlink (cloud -> gateway)::

    pg/v1/{site}/{gateway}/models        signed model manifests (retained)
    pg/v1/{site}/{gateway}/receipts      delivery receipts (contract v2, QoS 1, not retained)

    pg/v1/{site}/{gateway}/down/notice_acks   the ED's acknowledgements of pre-arrival notices
    pg/v1/{site}/{gateway}/down/model_cmd     signed rollout commands: promote / roll back (retained)

Local bus on the gateway's own broker, JSON, for nurse-call and pager systems::

    pulsegate/local/{gateway}/alarms/{bed}
    pulsegate/local/{gateway}/epcr/notice        the ambulance's ePCR asks for a notice (JSON)
    pulsegate/local/{gateway}/epcr/notice_state  what was sent and whether the ED acknowledged (JSON)

Receiving hospitals (cloud broker, JSON, for an ED's own systems)::

    pg/ed/v1/{hospital}/arrivals/{notice_id}   the latest notice (retained; empty = gone)
    pg/ed/v1/{hospital}/ack                     the ED acknowledges {"notice_id", "rev"}

Site and gateway ids are restricted to ``[A-Za-z0-9_-]{1,64}`` so that they can
never contain MQTT wildcards or separators; a mosquitto ACL pattern
``pg/v1/+/%u/#`` then confines each gateway to its own topics.
"""

from __future__ import annotations

import re

PREFIX = "pg/v1"
STREAMS = ("alarms", "summaries", "events", "bulk", "status", "notices")
DOWNLINK_MODELS = "models"
DOWNLINK_RECEIPTS = "receipts"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class TopicError(ValueError):
    pass


def check_id(kind: str, value: str) -> str:
    if not _ID.match(value):
        raise TopicError(f"{kind} id {value!r} must match [A-Za-z0-9_-]{{1,64}}")
    return value


def uplink(site: str, gateway: str, stream: str) -> str:
    if stream not in STREAMS:
        raise TopicError(f"unknown stream {stream!r}")
    return f"{PREFIX}/{site}/{gateway}/{stream}"


def models(site: str, gateway: str) -> str:
    return f"{PREFIX}/{site}/{gateway}/{DOWNLINK_MODELS}"


def receipts(site: str, gateway: str) -> str:
    return f"{PREFIX}/{site}/{gateway}/{DOWNLINK_RECEIPTS}"


def ingest_filters(group: str = "ingest") -> list[str]:
    """MQTT 5 shared subscriptions splitting uplink traffic across workers: one per uplink stream, so the
    ingest never receives the downlink (models, its own receipts). (v1 subscribed ``pg/v1/+/+/+``.)"""
    return [f"$share/{group}/{PREFIX}/+/+/{stream}" for stream in STREAMS]


def parse_uplink(topic: str) -> tuple[str, str, str]:
    """Split an uplink topic into (site, gateway, stream); TopicError if it is not one."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise TopicError(f"not a v1 uplink topic: {topic[:200]!r}")
    site, gateway, stream = parts[2], parts[3], parts[4]
    check_id("site", site)
    check_id("gateway", gateway)
    if stream not in STREAMS:
        raise TopicError(f"unknown stream {stream[:40]!r}")
    return site, gateway, stream


def local_alarms(gateway: str, bed: str) -> str:
    return f"pulsegate/local/{gateway}/alarms/{bed}"


# ---- ambulance pre-arrival notices (issue 16) ---------------------------------------------------------
DOWNLINK_NOTICE_ACKS = "notice_acks"
ED_PREFIX = "pg/ed/v1"


def notice_acks(site: str, gateway: str) -> str:
    """Downlink: the receiving ED's acknowledgements of this gateway's notices (NoticeAck, MessagePack).

    One level deeper than the uplink streams, so the ingest's ``pg/v1/+/+/+`` never receives (and
    dead-letters) the acknowledgements the cloud itself publishes."""
    return f"{PREFIX}/{site}/{gateway}/down/{DOWNLINK_NOTICE_ACKS}"


def notices_filter() -> str:
    """The cloud arrivals service reads every gateway's notices (a plain subscription, not the ingest's share)."""
    return f"{PREFIX}/+/+/notices"


def ed_notice(hospital: str, notice_id: str) -> str:
    """Feed for an ED's own systems: one retained JSON document per incoming patient."""
    return f"{ED_PREFIX}/{check_id('hospital', hospital)}/arrivals/{check_id('notice', notice_id)}"


def ed_notices_filter(hospital: str = "+") -> str:
    return f"{ED_PREFIX}/{hospital}/arrivals/+"


def ed_ack(hospital: str) -> str:
    """An ED's systems acknowledge here (JSON ``{"notice_id", "rev"}``)."""
    return f"{ED_PREFIX}/{check_id('hospital', hospital)}/ack"


def ed_ack_filter() -> str:
    return f"{ED_PREFIX}/+/ack"


def local_epcr(gateway: str, leaf: str) -> str:
    """The vehicle's ePCR on the gateway's local broker: ``notice`` (in, JSON) and ``notice_state`` (out)."""
    return f"pulsegate/local/{gateway}/epcr/{leaf}"


# ---- staged rollouts (issue 12) ------------------------------------------------------------------------------
DOWNLINK_MODEL_CMD = "model_cmd"


def model_cmd(site: str, gateway: str) -> str:
    """Downlink: the cloud's signed promote / rollback of a rollout (wire.rollout.RolloutCommand)."""
    return f"{PREFIX}/{site}/{gateway}/down/{DOWNLINK_MODEL_CMD}"
