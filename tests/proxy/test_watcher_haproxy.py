"""`istio-burst watcher` with ACTUATOR=haproxy against a real HAProxy in front of two real
workers: the weights it sets are what the proxy uses for real requests; a weight changed by hand
is noticed; a dead proxy is reported and the watcher recovers when it returns."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from istio_burst.watcher.settings import LOCAL_QUERY
from tests.proxy.conftest import PacedSender, send_requests
from tests.support.exporter import LoadExporter
from tests.support.haproxy import HAProxyServer, runtime_command
from tests.support.processes import ManagedProcess
from tests.support.prometheus import PrometheusServer
from tests.support.redis_server import RedisServer
from tests.support.watcher import metric_value, start_watcher, status, wait_status


def haproxy_watcher(
    tmp_path: Path,
    prometheus: PrometheusServer,
    proxy: HAProxyServer,
    own_redis: RedisServer,
    **env: str,
) -> tuple[ManagedProcess, str]:
    return start_watcher(
        tmp_path,
        prometheus.url,
        ACTUATOR="haproxy",
        HAPROXY_RUNTIME_API=proxy.runtime_api,
        REDIS_URL=own_redis.url,
        **env,
    )


def proxy_weights(proxy: HAProxyServer) -> tuple[int, int]:
    return (
        int(runtime_command(proxy.runtime_api, "get weight workers/primary").split()[0]),
        int(runtime_command(proxy.runtime_api, "get weight workers/burst").split()[0]),
    )


def wait_proxy_weights(
    proxy: HAProxyServer, want: tuple[int, int], watcher: ManagedProcess, timeout: float = 40
) -> None:
    deadline = time.monotonic() + timeout
    seen = proxy_weights(proxy)
    while seen != want:
        assert time.monotonic() < deadline, f"weights {seen}, never {want}:\n{watcher.output()}"
        assert watcher.alive(), watcher.output()
        time.sleep(0.1)
        seen = proxy_weights(proxy)


def test_the_weights_the_watcher_sets_split_real_requests(
    tmp_path: Path,
    load: LoadExporter,
    prometheus: PrometheusServer,
    proxy: HAProxyServer,
    own_redis: RedisServer,
) -> None:
    # Overflow mode, 30 req/s against a primary capacity of 20 (+10 %): burst gets 30 % in
    # steps of 10, and stops there (primary's 21 req/s fit).
    load.set_rate(30)
    proc, url = haproxy_watcher(
        tmp_path,
        prometheus,
        proxy,
        own_redis,
        MODE="overflow",
        PRIMARY_CAPACITY="20",
        STEP="10",
    )
    try:
        wait_proxy_weights(proxy, (70, 30), proc)
        state = wait_status(proc, url, lambda s: s["weights"] == {"primary": 70, "burst": 30})
        assert state["actuator"] == "haproxy" and "haproxy backend workers" in state["target"]

        served = send_requests(proxy.url, 1000)

        assert sum(served.values()) == 1000 and set(served) <= {"primary", "burst"}, served
        assert abs(served["burst"] / 1000 - 0.30) <= 0.05, served
        assert proxy_weights(proxy) == (70, 30), "held while the load stays"
    finally:
        proc.stop()


def test_real_traffic_through_the_proxy_bursts_and_returns(
    tmp_path: Path,
    prometheus: PrometheusServer,
    proxy: HAProxyServer,
    own_redis: RedisServer,
) -> None:
    """The signal is the data plane's own count (LOCAL_QUERY on HAProxy's exporter)."""
    proc, url = haproxy_watcher(tmp_path, prometheus, proxy, own_redis, QUERY=LOCAL_QUERY)
    try:
        with PacedSender(proxy.url) as sender:
            sender.rate = 25
            wait_proxy_weights(proxy, (0, 100), proc)
            state = wait_status(proc, url, lambda s: s["weights"]["burst"] == 100)
            assert state["last_change"]["reason"] == "above_high"
            assert state["reading"] > 15
            before = sender.served["burst"]
            deadline = time.monotonic() + 20
            while sender.served["burst"] < before + 20:
                assert time.monotonic() < deadline, sender.served
                time.sleep(0.1)

            sender.rate = 3
            wait_proxy_weights(proxy, (100, 0), proc)
            assert status(url)["last_change"]["reason"] == "low_for_window"
        assert not {k for k in sender.served if k not in ("primary", "burst")}, sender.served
    finally:
        proc.stop()


def test_a_weight_changed_by_hand_is_noticed_and_decided_again(
    tmp_path: Path,
    load: LoadExporter,
    prometheus: PrometheusServer,
    proxy: HAProxyServer,
    own_redis: RedisServer,
) -> None:
    load.set_rate(30)
    proc, url = haproxy_watcher(tmp_path, prometheus, proxy, own_redis)
    try:
        wait_proxy_weights(proxy, (0, 100), proc)
        writes = metric_value(url, "hashr_watcher_writes_total")

        # An operator puts everything back on primary by hand; the load still asks for burst.
        runtime_command(proxy.runtime_api, "set weight workers/primary 100")
        runtime_command(proxy.runtime_api, "set weight workers/burst 0")

        wait_proxy_weights(proxy, (0, 100), proc)
        state = wait_status(
            proc, url, lambda s: metric_value(url, "hashr_watcher_writes_total") > writes
        )
        assert state["last_change"]["old"] == {"primary": 100, "burst": 0}
        assert state["last_change"]["new"] == {"primary": 0, "burst": 100}
        assert state["last_change"]["reason"] == "above_high"
    finally:
        proc.stop()


def test_haproxy_killed_holds_reports_not_ready_and_recovers(
    tmp_path: Path,
    load: LoadExporter,
    prometheus: PrometheusServer,
    proxy: HAProxyServer,
    own_redis: RedisServer,
) -> None:
    load.set_rate(30)
    proc, url = haproxy_watcher(tmp_path, prometheus, proxy, own_redis, MAX_BACKOFF="1")
    try:
        wait_proxy_weights(proxy, (0, 100), proc)
        proxy.kill()

        down = wait_status(proc, url, lambda s: not s["ready"])
        assert "failed calls to haproxy backend workers" in down["not_ready_reason"]
        assert down["write_failures"] >= 3
        assert down["weights"] == {"primary": 0, "burst": 100}, "held, not reset"
        response = httpx.get(url + "/healthz", timeout=5)
        assert response.status_code == 503
        assert metric_value(url, "hashr_watcher_write_errors_total", kind="unreachable") >= 3
        assert metric_value(url, "hashr_watcher_ready") == 0
        assert proc.alive()

        proxy.start()  # back with its config's weights: everything on primary
        wait_proxy_weights(proxy, (0, 100), proc)  # read again, decided again, written
        wait_status(proc, url, lambda s: s["ready"], timeout=30)
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
    finally:
        proc.stop()
