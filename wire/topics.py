"""MQTT topic scheme (the ``pg/v1`` tree; unchanged in contract v2 but for the receipts downlink).

Uplink (gateway -> cloud broker), one topic per stream of a gateway::

    pg/v1/{site}/{gateway}/{stream}      stream in STREAMS

Downlink (cloud -> gateway)::

    pg/v1/{site}/{gateway}/models        signed model manifests (retained)
    pg/v1/{site}/{gateway}/receipts      delivery receipts (contract v2, QoS 1, not retained)

Local bus on the gateway's own broker, JSON, for nurse-call and pager systems::

    pulsegate/local/{gateway}/alarms/{bed}

Site and gateway ids are restricted to ``[A-Za-z0-9_-]{1,64}`` so that they can
never contain MQTT wildcards or separators; a mosquitto ACL pattern
``pg/v1/+/%u/#`` then confines each gateway to its own topics.
"""

from __future__ import annotations

import re

PREFIX = "pg/v1"
STREAMS = ("alarms", "summaries", "events", "bulk", "status")
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
