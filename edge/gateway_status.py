"""Prometheus view of the uplink and its outbox (for the gateway's /metrics).

``uplink_metrics(collector, uplink)`` registers readings on the daemon's
:class:`runtime.metrics.CallbackCollector`: values are read at scrape time
from the uplink's and the outbox's own counters, so the hot path never touches
a metrics library. The nurse page's cloud-link banner reads
``uplink.connected`` directly.
"""

from __future__ import annotations

from edge.uplink import Uplink
from runtime.metrics import CallbackCollector


def uplink_metrics(c: CallbackCollector, up: Uplink) -> None:
    ob = up.outbox
    c.counter("pulsegate_uplink_published", "outbox records published (QoS 1)", lambda: up.published)
    c.counter("pulsegate_uplink_acked", "records acknowledged by the broker and deleted", lambda: up.acked)
    c.counter("pulsegate_uplink_refused", "publishes the broker refused (kept in the outbox)", lambda: up.refused)
    c.counter("pulsegate_uplink_connects", "successful connections", lambda: up.connects)
    c.counter("pulsegate_uplink_connect_failures", "failed connection attempts", lambda: up.connect_failures)
    c.counter("pulsegate_outbox_appended", "records appended", lambda: ob.appended)
    c.counter("pulsegate_outbox_dropped", "records dropped by the disk quota (reported as gaps)", lambda: ob.dropped)
    c.counter("pulsegate_outbox_gaps", "gap records written", lambda: ob.gaps)
    c.counter("pulsegate_outbox_commit_errors", "failed outbox commits (retried)", lambda: ob.commit_errors)
    c.gauge("pulsegate_uplink_connected", "1 while connected to the cloud broker", lambda: int(up.connected))
    c.gauge("pulsegate_uplink_inflight", "records awaiting PUBACK", lambda: up.inflight)
    c.gauge("pulsegate_outbox_backlog", "records not yet acknowledged", ob.backlog)
    c.gauge("pulsegate_outbox_backlog_bytes", "payload bytes stored", ob.backlog_bytes)
