"""The worker's Prometheus metrics (`hashr_worker_*`)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector


class LoopHistogram(Collector):
    """A Prometheus histogram for code that runs on one event loop thread.

    observe() is a bisect and two additions: prometheus_client's Histogram takes a lock per
    bucket and per sum, which on the worker's hot path (two observations per request) cost
    several percent of throughput. Scrapes run on the same loop, so no lock is needed.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = [float(b) for b in buckets] + [float("inf")]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1  # first bucket with value <= le
        self._sum += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation)
        cumulative = 0
        buckets = []
        for bound, count in zip(self._bounds, self._counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        family.add_metric([], buckets, self._sum)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)


REQUESTS = Counter("hashr_worker_requests", "HTTP responses by status code", ["status"])
HASH_SECONDS = LoopHistogram(
    "hashr_worker_hash_seconds",
    "time to hash one string",
    buckets=(0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01),
)
PUBLISH_SECONDS = LoopHistogram(
    "hashr_worker_publish_seconds",
    "time from enqueueing a publish to Redis confirming it (or to the 503)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
PUBLISH_ERRORS = Counter(
    "hashr_worker_publish_errors", "publishes that failed (answered 503), by reason", ["reason"]
)
PUBLISH_BATCH = LoopHistogram(
    "hashr_worker_publish_batch_size",
    "messages sent to Redis in one write",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
REDIS_UP = Gauge("hashr_worker_redis_up", "1 while the last Redis command succeeded, else 0")
PUBLISH_IN_FLIGHT = Gauge(
    "hashr_worker_publish_in_flight", "requests waiting for Redis to confirm their publish"
)
