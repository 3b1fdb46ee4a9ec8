"""Prometheus view of an ingest worker (values read from its counters at scrape time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.metrics import CallbackCollector

if TYPE_CHECKING:
    from cloud.ingest import IngestWorker


def ingest_metrics(c: CallbackCollector, w: IngestWorker) -> None:
    d = w.delivery
    c.counter("pulsegate_ingest_messages_received", "MQTT messages received", lambda: w.received)
    c.counter("pulsegate_ingest_messages_acked", "MQTT messages acknowledged after InfluxDB accepted them",
              lambda: w.acked)
    c.counter("pulsegate_ingest_points", "points produced from decoded messages", lambda: w.points)
    c.counter("pulsegate_ingest_points_written", "points InfluxDB accepted", lambda: d.written)
    c.counter("pulsegate_ingest_batches", "batches delivered", lambda: w.batches)
    c.counter("pulsegate_ingest_influx_requests", "HTTP write requests", lambda: d.requests)
    c.counter("pulsegate_ingest_batch_splits", "batches split after 413/400/422", lambda: d.splits)
    c.counter("pulsegate_ingest_deadletters", "dead-lettered messages/points",
              lambda: {(reason,): float(n) for reason, n in sorted(w.deadletters.counts.items())}, labels=("reason",))
    c.counter("pulsegate_ingest_influx_retries", "write retries",
              lambda: {(str(s),): float(n) for s, n in sorted(d.retries.items())}, labels=("status",))
    c.counter("pulsegate_ingest_deadletter_write_errors", "dead letters that could not be written (disk)",
              lambda: w.deadletters.write_errors)
    c.counter("pulsegate_ingest_receipts_sent", "delivery receipts published to gateways (contract v2)",
              lambda: w.receipts.sent)
    c.gauge("pulsegate_ingest_connected", "1 if subscribed", lambda: int(w.connected))
    c.gauge("pulsegate_ingest_queue", "messages waiting for a batch", lambda: w.queued)
