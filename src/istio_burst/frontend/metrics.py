from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from istio_burst.core.contracts import FRONTEND_REQUESTS_METRIC

# prometheus_client appends `_total` to counters itself.
REQUESTS = Counter(
    FRONTEND_REQUESTS_METRIC.removesuffix("_total"),
    "requests the load driver meant to send, by target (always default: the one PROCESSOR_URL) "
    "and outcome "
    "(ok, failed, skipped: not sent because too many were in flight or it fell behind)",
    ["target", "outcome"],
)
SKIPPED = Counter(
    "hashr_frontend_requests_skipped",
    "requests not sent, by reason: in_flight (MAX_IN_FLIGHT unanswered), late (the process "
    "was stalled for more than a second) or cap (it would make more than the frequency in one "
    "second: ticks bunched by a stall)",
    ["reason"],
)
REQUEST_SECONDS = Histogram(
    "hashr_frontend_request_seconds",
    "time from sending a request to the worker until its answer (ok and failed)",
    ["target"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
IN_FLIGHT = Gauge("hashr_frontend_requests_in_flight", "requests to the workers not yet answered")
FREQUENCY = Gauge(
    "hashr_frontend_frequency",
    "requests per second this replica's driver is set to (its share of the deployment's)",
)
DEPLOYMENT_FREQUENCY = Gauge(
    "hashr_frontend_deployment_frequency", "the deployment's frequency F, shared through Redis"
)
FREQUENCY_SHARED = Gauge(
    "hashr_frontend_frequency_shared",
    "1 while frequency changes reach every replica (Redis subscribed and read), else 0",
)
REPLICAS = Gauge(
    "hashr_frontend_replicas", "live frontend replicas, by heartbeat; each drives F / replicas"
)
HEARTBEAT_ERRORS = Counter(
    "hashr_frontend_heartbeat_errors", "heartbeats Redis did not answer (the last share stays)"
)
ACHIEVED_RATE = Gauge(
    "hashr_frontend_achieved_rate",
    "requests per second actually sent (ok + failed) over the last second",
)
FREQUENCY_REFUSED = Counter(
    "hashr_frontend_frequency_refused", "frequency events refused as invalid"
)
FREQUENCY_DROPPED = Counter(
    "hashr_frontend_frequency_dropped",
    "frequency events dropped because their page sent more than FREQUENCY_EVENTS_PER_SECOND",
)
REFUSED = Counter(
    "hashr_frontend_refused",
    "requests and sockets refused before the app, by reason: host (not in ALLOWED_HOSTS), "
    "too_large (a socket.io message over 64 KiB), binary (binary socket.io packets)",
    ["reason"],
)
CONNECTED_PAGES = Gauge("hashr_frontend_connected_pages", "socket.io clients connected now")
HASHES_RELAYED = Counter(
    "hashr_frontend_hashes_relayed",
    "hashes received from Redis and sent on to the pages, by cluster",
    ["cluster"],
)
HASHES_ELIDED = Counter(
    "hashr_frontend_hashes_elided",
    "hashes a page got only as a count, not one by one (more than HASHES_PER_BATCH arrived "
    "in one window, or the page was behind); summed over pages",
)
END_TO_END_SECONDS = Histogram(
    "hashr_frontend_end_to_end_seconds",
    "time from the worker publishing a hash until the frontend hands it to the pages",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BAD_MESSAGES = Counter(
    "hashr_frontend_bad_messages",
    "Redis messages that broke their contract (a bad hash, watcher state or frequency change), "
    "by channel",
    ["channel"],
)
REDIS_UP = Gauge(
    "hashr_frontend_redis_up", "1 while the replica's one Redis subscription is up, else 0"
)
