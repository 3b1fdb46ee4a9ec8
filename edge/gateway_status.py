"""Prometheus view of the uplink and its outbox (for the gateway's /metrics).

``uplink_metrics(collector, uplink)`` registers readings on the daemon's
:class:`runtime.metrics.CallbackCollector`: values are read at scrape time
from the uplink's and the outbox's own counters, so the hot path never touches
a metrics library. The nurse page's cloud-link banner reads
``uplink.connected`` directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.budget import Budget
from edge.links import LinkSet
from edge.uplink import Uplink
from runtime.metrics import CallbackCollector

if TYPE_CHECKING:
    from edge.ambulance import AmbulanceService


def uplink_metrics(c: CallbackCollector, up: Uplink | LinkSet) -> None:
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
    if isinstance(up, LinkSet):
        ls = up
        c.counter("pulsegate_uplink_handovers", "moves from one link to another", lambda: ls.handovers)
        c.gauge("pulsegate_uplink_active_link", "index of the active link (0 = the preferred one)",
                lambda: ls.active)
        c.gauge("pulsegate_uplink_link_bytes", "MQTT bytes handed to each link (topic + payload)",
                lambda: {(n,): float(u.bytes_out) for n, _, u in ls.links}, labels=("link",))


def ambulance_metrics(c: CallbackCollector, amb: AmbulanceService, budget: Budget | None) -> None:
    s = amb.sender
    c.counter("pulsegate_notices_sent", "pre-arrival notice revisions handed to the outbox", lambda: s.sent)
    c.counter("pulsegate_notice_acks", "ED acknowledgements received", lambda: s.acks)
    c.counter("pulsegate_notice_acks_rejected", "acknowledgements not matching the notice", lambda: s.rejected_acks)
    c.counter("pulsegate_epcr_rejected", "ePCR requests refused (bad JSON or values)", lambda: amb.epcr_rejected)
    c.gauge("pulsegate_gps_fix", "1 while the GPS has a fix", lambda: int(amb.tracker.has_fix))
    c.gauge("pulsegate_summary_interval_seconds", "summary interval now (the budget stretches it)",
            lambda: amb.summarizer.interval_s)
    if budget is not None:
        b = budget
        c.gauge("pulsegate_budget_bytes_hour", "metered bytes in the trailing hour", b.used_hour)
        c.gauge("pulsegate_budget_bytes_month", "metered bytes this calendar month (UTC)", lambda: b.month_used)
        c.gauge("pulsegate_budget_bytes_per_hour", "the configured hourly budget", lambda: b.cfg.bytes_per_hour)
        c.gauge("pulsegate_budget_level", "throttling level 0-3", lambda: b.level)
        c.counter("pulsegate_budget_metered_bytes", "bytes charged on metered links", lambda: b.metered_total)
