from __future__ import annotations

from prometheus_client import Counter, Gauge

REQUEST_RATE = Gauge(
    "hashr_watcher_request_rate", "last usable reading of the worker's request rate, req/s"
)
WEIGHT = Gauge("hashr_watcher_weight", "current route weight by subset, percent", ["subset"])
MODE = Gauge("hashr_watcher_mode", "1 for the mode in use (switch or overflow)", ["mode"])
THRESHOLD = Gauge("hashr_watcher_threshold", "configured thresholds, req/s", ["name"])
READINGS = Counter("hashr_watcher_readings", "Prometheus readings by kind", ["kind"])
READ_ERRORS = Counter(
    "hashr_watcher_read_errors", "readings that gave no usable rate, by kind", ["kind"]
)
CONSECUTIVE_FAILURES = Gauge(
    "hashr_watcher_consecutive_read_failures", "bad readings in a row right now"
)
DECISIONS = Counter(
    "hashr_watcher_decisions", "decisions by what they did and why", ["decision", "reason"]
)
WRITES = Counter("hashr_watcher_writes", "weight changes written (or logged, in dry run)")
WRITE_ERRORS = Counter(
    "hashr_watcher_write_errors", "failed reads or writes of the routing, by kind", ["kind"]
)
LAST_WRITE = Gauge(
    "hashr_watcher_last_write_timestamp_seconds", "Unix time of the last successful write"
)
BURST_HEALTHY = Gauge(
    "hashr_watcher_burst_healthy", "1 healthy, 0 unhealthy, -1 unknown (no evidence)"
)
READY = Gauge("hashr_watcher_ready", "1 while readings and writes succeed")
STATE_PUBLISH_ERRORS = Counter(
    "hashr_watcher_state_publish_errors", "failures publishing the state on Redis"
)
RECORDS = Counter(
    "hashr_watcher_records", "decision records by reason (repeats included)", ["reason"]
)
NOTIFICATIONS = Counter(
    "hashr_watcher_notifications",
    "decision records sent to NOTIFY_URL, by outcome: sent, failed (after retries), dropped "
    "(queue full)",
    ["outcome"],
)
KUBE_EVENTS = Counter(
    "hashr_watcher_kube_events",
    "Kubernetes Events written for decision records, by outcome: created, updated (a repeat "
    "counted into its series), failed, dropped (queue full)",
    ["outcome"],
)
LEADER = Gauge("hashr_watcher_leader", "1 while this replica leads (or is the only one)")
