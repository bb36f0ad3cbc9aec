"""The worker's Prometheus metrics (`hashr_worker_*`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Three histogram observations per request cost ~1.8 us with prometheus_client's locks: about 2 %
# of a request at 10,000 req/s (bench/worker.py prints the row).
REQUESTS = Counter("hashr_worker_requests", "HTTP responses by status code", ["status"])
HASH_SECONDS = Histogram(
    "hashr_worker_hash_seconds",
    "time to hash one string",
    buckets=(0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01),
)
PUBLISH_SECONDS = Histogram(
    "hashr_worker_publish_seconds",
    "time from enqueueing a publish to Redis confirming it (or to the 503)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
PUBLISH_ERRORS = Counter(
    "hashr_worker_publish_errors", "publishes that failed (answered 503), by reason", ["reason"]
)
PUBLISH_BATCH = Histogram(
    "hashr_worker_publish_batch_size",
    "messages sent to Redis in one pipeline",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
REDIS_UP = Gauge("hashr_worker_redis_up", "1 while the last Redis command succeeded, else 0")
PUBLISH_IN_FLIGHT = Gauge(
    "hashr_worker_publish_in_flight", "requests waiting for Redis to confirm their publish"
)
