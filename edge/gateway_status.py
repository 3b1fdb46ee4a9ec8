"""Prometheus view of the uplink and its outbox (for the gateway's /metrics).

``registry.register(UplinkCollector(uplink))``: values are read at scrape
time from the uplink's and the outbox's own counters, so the hot path never
touches a metrics library. The nurse page's cloud-link banner reads
``uplink.connected`` directly.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.uplink import Uplink


class UplinkCollector(Collector):
    def __init__(self, uplink: Uplink) -> None:
        self.uplink = uplink

    def collect(self) -> Iterable[Metric]:
        up, ob = self.uplink, self.uplink.outbox
        for name, doc, value in (
            ("pulsegate_uplink_published", "outbox records published (QoS 1)", up.published),
            ("pulsegate_uplink_acked", "records acknowledged by the broker and deleted", up.acked),
            ("pulsegate_uplink_refused", "publishes the broker refused (kept in the outbox)", up.refused),
            ("pulsegate_uplink_connects", "successful connections", up.connects),
            ("pulsegate_uplink_connect_failures", "failed connection attempts", up.connect_failures),
            ("pulsegate_outbox_appended", "records appended", ob.appended),
            ("pulsegate_outbox_dropped", "records dropped by the disk quota (reported as gaps)", ob.dropped),
            ("pulsegate_outbox_gaps", "gap records written", ob.gaps),
            ("pulsegate_outbox_commit_errors", "failed outbox commits (retried)", ob.commit_errors),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily("pulsegate_uplink_connected", "1 while connected to the cloud broker",
                                value=int(up.connected))
        yield GaugeMetricFamily("pulsegate_uplink_inflight", "records awaiting PUBACK", value=up.inflight)
        yield GaugeMetricFamily("pulsegate_outbox_backlog", "records not yet acknowledged", value=ob.backlog())
        yield GaugeMetricFamily("pulsegate_outbox_backlog_bytes", "payload bytes stored", value=ob.backlog_bytes())
