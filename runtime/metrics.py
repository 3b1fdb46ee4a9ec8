"""Prometheus metrics read from the components' own counters at scrape time.

Hot paths only increment plain integers on their objects; this collector turns
them into metric families when /metrics is scraped, so counting costs nothing
per sample beyond ``self.n += 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

Reading = Callable[[], float | dict[tuple[str, ...], float]]


class CallbackCollector(Collector):
    def __init__(self) -> None:
        self._metrics: list[tuple[str, str, str, tuple[str, ...], Reading]] = []

    def counter(self, name: str, doc: str, read: Reading, labels: Iterable[str] = ()) -> None:
        self._metrics.append(("counter", name, doc, tuple(labels), read))

    def gauge(self, name: str, doc: str, read: Reading, labels: Iterable[str] = ()) -> None:
        self._metrics.append(("gauge", name, doc, tuple(labels), read))

    def collect(self) -> Iterator[Metric]:
        for kind, name, doc, labels, read in self._metrics:
            family: CounterMetricFamily | GaugeMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(name, doc, labels=labels)
            else:
                family = GaugeMetricFamily(name, doc, labels=labels)
            value = read()
            if isinstance(value, dict):
                for label_values, v in value.items():
                    family.add_metric(list(label_values), v)
            else:
                family.add_metric([], value)
            yield family


def new_registry() -> tuple[CollectorRegistry, CallbackCollector]:
    registry = CollectorRegistry()
    collector = CallbackCollector()
    registry.register(collector)
    return registry, collector
