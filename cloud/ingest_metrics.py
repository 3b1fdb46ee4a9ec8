"""Prometheus view of an ingest worker (values read from its counters at scrape time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from cloud.ingest import IngestWorker


class IngestCollector(Collector):
    def __init__(self, worker: IngestWorker) -> None:
        self.w = worker

    def collect(self) -> list[Metric]:
        w, d = self.w, self.w.delivery
        out: list[Metric] = []
        for name, doc, value in (
            ("pulsegate_ingest_messages_received", "MQTT messages received", w.received),
            ("pulsegate_ingest_messages_acked", "MQTT messages acknowledged after InfluxDB accepted them", w.acked),
            ("pulsegate_ingest_points", "points produced from decoded messages", w.points),
            ("pulsegate_ingest_points_written", "points InfluxDB accepted", d.written),
            ("pulsegate_ingest_batches", "batches delivered", w.batches),
            ("pulsegate_ingest_influx_requests", "HTTP write requests", d.requests),
            ("pulsegate_ingest_batch_splits", "batches split after 413/400/422", d.splits),
        ):
            out.append(CounterMetricFamily(name, doc, value=value))
        dl = CounterMetricFamily("pulsegate_ingest_deadletters", "dead-lettered messages/points", labels=["reason"])
        for reason, n in sorted(w.deadletters.counts.items()):
            dl.add_metric([reason], n)
        out.append(dl)
        rt = CounterMetricFamily("pulsegate_ingest_influx_retries", "write retries", labels=["status"])
        for status, n in sorted(d.retries.items()):
            rt.add_metric([status], n)
        out.append(rt)
        out.append(GaugeMetricFamily("pulsegate_ingest_connected", "1 if subscribed", value=int(w.connected)))
        out.append(GaugeMetricFamily("pulsegate_ingest_queue", "messages waiting for a batch", value=w.queued))
        return out
