"""Process metrics: one value slot per series of protocol.toml's counters and gauges (the
generated SLOT_* constants), the duration histogram, and their Prometheus exposition from a
private registry, rendered from the METRICS table. Mirror: services/c-server/src/metrics.c.

Each slot has one writing thread, except the database error counts (the reader's and the
updater's), which :meth:`Metrics.add_shared` writes under a lock; scrapes read plain ints.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator, Mapping

import prometheus_client
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .generated.protocol import DURATION_BUCKETS, METRICS, SLOTS_COUNT, MetricSpec

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_PLAIN_0_0_4


class Metrics:
    """The value slots and the histogram; ``info`` fills the labels of "info" metrics."""

    def __init__(self, info: Mapping[str, str]) -> None:
        self.value: list[int] = [0] * SLOTS_COUNT
        self.duration_counts: list[int] = [0] * (len(DURATION_BUCKETS) + 1)  # last: +Inf
        self.duration_sum = 0.0
        self.info = dict(info)
        self._lock = threading.Lock()

    def add(self, slot: int, v: int = 1) -> None:
        """slot: SLOT_<METRIC> (+ the series' index); from the slot's one writing thread."""
        self.value[slot] += v

    def add_shared(self, slot: int, v: int = 1) -> None:
        """For a slot more than one thread writes."""
        with self._lock:
            self.value[slot] += v

    def set(self, slot: int, v: int) -> None:
        self.value[slot] = v

    def observe(self, seconds: float) -> None:
        """One request duration into the histogram (event loop thread)."""
        self.duration_counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.duration_sum += seconds


class MetricsCollector(Collector):
    """Yields every family of METRICS, in order, with all its series."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        for spec in METRICS:
            if spec.shape == "histogram":
                yield self._histogram(spec)
            elif spec.shape == "info":
                family = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
                family.add_metric([self.m.info.get(label, "") for label in spec.labels], 1)
                yield family
            else:
                yield self._values(spec)

    def _values(self, spec: MetricSpec) -> Metric:
        family_type = CounterMetricFamily if spec.type == "counter" else GaugeMetricFamily
        if not spec.labels:
            return family_type(spec.name, spec.help, value=float(self.m.value[spec.slot]))
        family = family_type(spec.name, spec.help, labels=list(spec.labels))
        for i, label in enumerate(spec.series):
            family.add_metric([label], self.m.value[spec.slot + i])
        return family

    def _histogram(self, spec: MetricSpec) -> Metric:
        counts = list(self.m.duration_counts)
        buckets: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip(DURATION_BUCKETS, counts, strict=False):
            total += count
            buckets.append((floatToGoString(bound), total))
        total += counts[-1]
        buckets.append(("+Inf", total))
        return HistogramMetricFamily(
            spec.name, spec.help, buckets=buckets, sum_value=self.m.duration_sum
        )


def make_registry(metrics: Metrics) -> CollectorRegistry:
    """A private registry holding only the points_* families."""
    prometheus_client.disable_created_metrics()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(metrics))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text format 0.0.4 exposition."""
    return prometheus_client.generate_latest(registry)
