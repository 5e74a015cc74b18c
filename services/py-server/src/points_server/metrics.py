"""Prometheus metrics: the families of protocol.METRICS, exposed from a private registry.

The request path updates plain attributes of :class:`Metrics` from the event loop thread (no
lock, no per-request object): a custom collector turns them into metric families at scrape
time. Values written from the database threads go through :meth:`Metrics.db_error` and friends,
which take a lock.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator

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

from . import LANGUAGE, __version__
from .protocol import DURATION_BUCKETS, ERRORS, METRICS, MetricSpec

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_PLAIN_0_0_4
DB_OPS: tuple[str, ...] = next(
    m.label_values["op"] for m in METRICS if m.name == "points_db_errors_total"
)


class Metrics:
    """The server's counters and gauges as plain numbers."""

    def __init__(self) -> None:
        # Event loop thread only.
        self.connections_total = 0
        self.connections_active = 0
        self.requests_total = 0
        self.errors: dict[str, int] = dict.fromkeys(ERRORS, 0)
        self.duration_counts: list[int] = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        # Reader thread only.
        self.db_reads_total = 0
        self.db_up = 0
        # Updater thread only.
        self.updates_total = 0
        self.update_lock_held = 0
        # Any thread, under the lock.
        self._lock = threading.Lock()
        self.db_errors: dict[str, int] = dict.fromkeys(DB_OPS, 0)

    def observe(self, seconds: float) -> None:
        """One request duration into the histogram (event loop thread)."""
        self.duration_counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.duration_sum += seconds

    def db_error(self, op: str) -> None:
        with self._lock:
            self.db_errors[op] += 1


class MetricsCollector(Collector):
    """Yields every family of protocol.METRICS, in order, with all label series."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics
        self._values: dict[str, Callable[[], float | dict[str, int]]] = {
            "points_connections_total": lambda: metrics.connections_total,
            "points_connections_active": lambda: metrics.connections_active,
            "points_requests_total": lambda: metrics.requests_total,
            "points_errors_total": lambda: dict(metrics.errors),
            "points_db_reads_total": lambda: metrics.db_reads_total,
            "points_db_errors_total": lambda: dict(metrics.db_errors),
            "points_db_up": lambda: metrics.db_up,
            "points_updates_total": lambda: metrics.updates_total,
            "points_update_lock_held": lambda: metrics.update_lock_held,
        }

    def collect(self) -> Iterator[Metric]:
        for spec in METRICS:
            yield self._family(spec)

    def _family(self, spec: MetricSpec) -> Metric:
        if spec.name == "points_request_duration_seconds":
            return self._histogram(spec)
        if spec.name == "points_build_info":
            family = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
            family.add_metric([LANGUAGE, __version__], 1)
            return family
        family_type = CounterMetricFamily if spec.type == "counter" else GaugeMetricFamily
        value = self._values[spec.name]()
        if not spec.labels:
            return family_type(spec.name, spec.help, value=float(value))  # type: ignore[arg-type]
        family = family_type(spec.name, spec.help, labels=list(spec.labels))
        assert isinstance(value, dict)
        for label, count in value.items():
            family.add_metric([label], count)
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
