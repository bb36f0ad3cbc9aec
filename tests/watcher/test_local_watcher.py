"""`istio-burst watcher` as a real process with the local actuator: a real Prometheus (1 s
scrape) reads an exporter whose request rate the test sets; weights and state land in a real
Redis, where the frontend's router and page read them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from istio_burst.core.contracts import (
    BURST_ONLY,
    PRIMARY_ONLY,
    ROUTING_CHANNEL,
    ROUTING_KEY,
    WATCHER_STATE_KEY,
    Weights,
)
from tests.support.channel import next_message
from tests.support.exporter import LoadExporter
from tests.support.processes import ManagedProcess
from tests.support.prometheus import PrometheusServer
from tests.support.redis_server import RedisServer
from tests.support.services import start_worker
from tests.support.watcher import metric_value, start_watcher, status, wait_status

BURST_ERROR_QUERY = (
    'sum(rate(hashr_frontend_requests_total{target="burst",outcome="failed"}[5s]))'
    ' / sum(rate(hashr_frontend_requests_total{target="burst",outcome!="skipped"}[5s]))'
)


@pytest.fixture
def routing(own_redis: RedisServer) -> Iterator[redis.client.PubSub]:
    """A subscriber on the routing channel, as the frontend's router is."""
    client = redis.Redis.from_url(own_redis.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(ROUTING_CHANNEL)
    yield pubsub
    pubsub.close()
    client.close()


def next_weights(pubsub: redis.client.PubSub, timeout: float = 30) -> Weights:
    raw = next_message(pubsub, timeout)
    assert raw is not None, f"no weights published within {timeout}s"
    return Weights.decode(raw)


def stored_weights(server: RedisServer) -> Weights:
    with redis.Redis.from_url(server.url) as client:
        raw = client.get(ROUTING_KEY)
    assert raw is not None
    return Weights.decode(raw)


def published_state(
    server: RedisServer, check: Callable[[dict[str, Any]], bool], timeout: float = 10
) -> dict[str, Any]:
    """The watcher's state as the page gets it from Redis, once `check` holds."""
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    with redis.Redis.from_url(server.url) as client:
        while time.monotonic() < deadline:
            state = orjson.loads(client.get(WATCHER_STATE_KEY) or b"{}")
            if state and check(state):
                return state
            time.sleep(0.05)
    raise AssertionError(f"state never matched: {state}")


def local_watcher(
    tmp_path: Path, prometheus: PrometheusServer, own_redis: RedisServer, **env: str
) -> tuple[ManagedProcess, str]:
    return start_watcher(
        tmp_path, prometheus.url, ACTUATOR="local", REDIS_URL=own_redis.host_port, **env
    )


def test_load_rising_shifts_to_burst_and_falling_returns_after_the_window(
    tmp_path: Path,
    load: LoadExporter,
    prometheus: PrometheusServer,
    own_redis: RedisServer,
    routing: redis.client.PubSub,
) -> None:
    load.set_rate(5)
    proc, url = local_watcher(tmp_path, prometheus, own_redis)
    try:
        assert next_weights(routing) == PRIMARY_ONLY, "the first round writes the missing key"
        wait_status(proc, url, lambda s: s["ready"] and (s["reading"] or 0) > 2)

        load.set_rate(30)
        assert next_weights(routing) == BURST_ONLY
        assert stored_weights(own_redis) == BURST_ONLY
        state = published_state(own_redis, lambda s: s["weights"]["burst"] == 100)
        assert state["mode"] == "switch" and state["actuator"] == "local"
        assert state["ready"] is True and state["reading_kind"] == "number"
        assert state["last_change"]["reason"] == "above_high"
        assert state["reading"] > 15
        for key in ("decision", "reason", "at"):
            assert key in state

        load.set_rate(3)
        assert next_weights(routing) == PRIMARY_ONLY
        after = status(url)
        assert after["last_change"]["reason"] == "low_for_window"
        assert after["reading"] < 10
        assert metric_value(url, "hashr_watcher_weight", subset="primary") == 100
        assert metric_value(url, "hashr_watcher_decisions_total", decision="to_burst",
                            reason="above_high") == 1  # fmt: skip
    finally:
        proc.stop()
    assert "watcher stopped" in proc.output(), "SIGTERM ends it through the graceful path"


def test_prometheus_gone_holds_the_weights_and_reports_not_ready_then_resumes(
    tmp_path: Path,
    load: LoadExporter,
    prometheus: PrometheusServer,
    own_redis: RedisServer,
    routing: redis.client.PubSub,
) -> None:
    load.set_rate(30)
    proc, url = local_watcher(tmp_path, prometheus, own_redis)
    try:
        while next_weights(routing) != BURST_ONLY:
            pass
        prometheus.stop()
        load.set_rate(0)  # the original would now read "no answer" as 0 req/s and flip back
        down = wait_status(proc, url, lambda s: not s["ready"])
        assert down["reading_kind"] == "unreachable"
        assert down["weights"] == {"primary": 0, "burst": 100}
        response = httpx.get(url + "/healthz", timeout=5)
        assert response.status_code == 503
        assert "bad readings in a row" in response.json()["reason"]
        assert metric_value(url, "hashr_watcher_read_errors_total", kind="unreachable") >= 3
        assert metric_value(url, "hashr_watcher_ready") == 0
        assert next_message(routing, timeout=2) is None, "nothing written while blind"
        assert stored_weights(own_redis) == BURST_ONLY

        prometheus.start()
        wait_status(proc, url, lambda s: s["ready"], timeout=30)
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        # Readings again: the rate is now really low, so after the window it goes back.
        assert next_weights(routing) == PRIMARY_ONLY
    finally:
        proc.stop()


def test_dead_burst_worker_gets_no_traffic_and_bursting_stops_when_it_dies(
    tmp_path: Path,
    load: LoadExporter,
    prometheus: PrometheusServer,
    own_redis: RedisServer,
    routing: redis.client.PubSub,
) -> None:
    worker, worker_url = start_worker(own_redis, tmp_path, prefix="bursty-")
    load.set_rate(5)
    try:
        proc, url = local_watcher(
            tmp_path,
            prometheus,
            own_redis,
            BURST_HEALTH_URL=worker_url + "/_healthz",
            BURST_BACKOFF="2",
        )
    except BaseException:
        worker.stop()
        raise
    try:
        assert next_weights(routing) == PRIMARY_ONLY
        load.set_rate(30)
        assert next_weights(routing) == BURST_ONLY

        worker.stop()  # the burst side dies while it has all the traffic
        assert next_weights(routing) == PRIMARY_ONLY
        held = wait_status(proc, url, lambda s: s["reason"] == "burst_unhealthy")
        assert held["weights"] == {"primary": 100, "burst": 0}
        assert held["burst_health"]["healthy"] is False
        assert held["reading"] > 15, "the load still asks for burst"
        assert next_message(routing, timeout=4) is None, "no burst into a dead side"

        worker = ManagedProcess("burst-worker-again", worker.argv, tmp_path, worker.env).start()
        worker.wait_http_ok(worker_url + "/")  # same port: the health URL answers again
        assert next_weights(routing) == BURST_ONLY, "healthy again, back-off over: bursts again"
    finally:
        proc.stop()
        worker.stop()


def test_burst_error_ratio_over_the_limit_sends_traffic_back(
    tmp_path: Path,
    load: LoadExporter,
    prometheus: PrometheusServer,
    own_redis: RedisServer,
    routing: redis.client.PubSub,
) -> None:
    load.set_rate(30, target="primary")
    proc, url = local_watcher(
        tmp_path,
        prometheus,
        own_redis,
        BURST_ERROR_QUERY=BURST_ERROR_QUERY,
        MAX_BURST_ERROR_RATIO="0.2",
        BURST_BACKOFF="60",
    )
    try:
        while next_weights(routing) != BURST_ONLY:
            pass
        # The frontend now sends to burst, and most of those requests fail.
        load.set_rate(0, target="primary")
        load.set_rate(8, target="burst", outcome="ok")
        load.set_rate(22, target="burst", outcome="failed")
        assert next_weights(routing) == PRIMARY_ONLY
        state = status(url)
        assert state["last_change"]["reason"] == "burst_unhealthy"
        assert "error ratio" in state["burst_health"]["detail"]
        assert state["reading"] > 15
    finally:
        proc.stop()


def test_redis_gone_makes_the_local_actuator_not_ready_until_it_is_back(
    tmp_path: Path, load: LoadExporter, prometheus: PrometheusServer, own_redis: RedisServer
) -> None:
    load.set_rate(30)
    proc, url = local_watcher(tmp_path, prometheus, own_redis, MAX_BACKOFF="1")
    try:
        wait_status(proc, url, lambda s: s["weights"]["burst"] == 100)
        own_redis.stop()
        down = wait_status(proc, url, lambda s: not s["ready"])
        assert "failed calls to redis key" in down["not_ready_reason"]
        assert metric_value(url, "hashr_watcher_write_errors_total", kind="unreachable") >= 3
        own_redis.start()
        wait_status(proc, url, lambda s: s["ready"], timeout=20)
        assert stored_weights(own_redis) == BURST_ONLY, "rewritten into the empty new Redis"
    finally:
        proc.stop()
