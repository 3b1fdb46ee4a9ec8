"""What the ingest accepts: its config section and the check of one untrusted MQTT message.

:func:`admit` turns one message from the uplink subscription into line-protocol
points, or into a :class:`Rejection` whose ``reason`` is a metric label and a
dead-letter key: ``topic`` (not an uplink topic), the ``wire.codec.WireError``
reasons (``malformed``, ``schema``, ``version``, ``oversize``), and
``gateway_mismatch`` (the message's ``gw`` is not the gateway of its topic: one
gateway speaking for another), ``identifier`` (a verdict or clinical event whose patient is not a
32-hex pseudonym: the cloud never stores a patient identifier, whatever a gateway sends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cloud import points
from cloud.receipts import Mark, mark_of
from runtime.configbase import Section
from wire import codec, messages, topics

PSEUDONYM = re.compile(r"[0-9a-f]{32}")


class IngestConfig(Section):
    """``[ingest]`` of the cloud TOML."""

    host: str = "localhost"
    port: int = 8883
    client_id: str = "pg-ingest-1"  # unique per worker and stable across restarts
    group: str = "ingest"
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    batch_points: int = 20000  # points per InfluxDB write at most (bench outage: 20,000 drained twice as fast as 5,000)
    flush_s: float = 1.0
    receive_maximum: int = 20000
    session_expiry_s: int = 24 * 3600
    keepalive_s: int = 30
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 0.25  # back within 0.25 s of a broker restart: gateways no longer hold off
    eager_flush: bool = True
    end_session_on_stop: bool = False
    deadletter_dir: str = "/var/lib/pulsegate/deadletter"
    receipts: bool = True  # contract v2: tell v2 gateways what was written (pg/v1/{site}/{gw}/receipts)
    receipt_interval_s: float = 1.0  # at most one receipt per gateway this often (coalesced)
    write_concurrency: int = 2  # batches in flight to InfluxDB at once (acknowledged in order)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str
    mark: Mark | None = None  # a decoded v2 message refused for good: receipted once dead-lettered


@dataclass(frozen=True, slots=True)
class Admitted:
    lines: list[str]
    mark: Mark | None  # what to receipt once the lines are written (None: a v1 message)


def admit(topic: str, payload: bytes) -> Admitted | Rejection:
    """Points of a valid message (contract v1 or v2) on its own gateway's topic, else why not."""
    try:
        site, gw, stream = topics.parse_uplink(topic)
    except topics.TopicError as exc:
        return Rejection("topic", str(exc))
    try:
        msg = codec.decode(payload)
    except codec.WireError as exc:
        return Rejection(exc.reason, exc.detail)
    if msg.gw != gw:
        return Rejection("gateway_mismatch", f"message gw {msg.gw[:64]!r} on topic of {gw!r}")
    if isinstance(msg, messages.Verdict | messages.ClinicalEvent) and not PSEUDONYM.fullmatch(msg.patient):
        # dead-lettered for good: receipted, or the gateway would re-send it for ever
        return Rejection("identifier", "a verdict or clinical event whose patient is not a pseudonym",
                         mark_of(site, msg, stream))
    return Admitted(points.to_lines(msg, site, stream), mark_of(site, msg, stream))
