"""`istio-burst watcher` with ACTUATOR=haproxy against a real HAProxy in front of two real
workers: the weights it sets are what the proxy uses for real requests; a weight changed by hand
is noticed; a dead proxy, a blind Prometheus and a failing burst side are reported, the weights
held or moved to safety, and the watcher recovers when they return."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from harness.exporter import LoadExporter
from harness.haproxy import HAProxyServer, runtime_command
from harness.metrics import metric_value
from harness.processes import ManagedProcess
from harness.prometheus import PrometheusServer
from harness.watcher import StartWatcher, status, wait_rounds, wait_status
from istio_burst.watcher.settings import LOCAL_BURST_ERROR_QUERY, LOCAL_QUERY
from tests.proxy.conftest import PacedSender, Workers, send_requests, wait_proxy_weights


def test_the_weights_the_watcher_sets_split_real_requests(
    load: LoadExporter, proxy: HAProxyServer, haproxy_watcher: StartWatcher
) -> None:
    # Overflow mode, 30 req/s against a primary capacity of 20 (+10 %): burst gets 30 % in
    # steps of 10, and stops there (primary's 21 req/s fit).
    load.set_rate(30)
    proc, url = haproxy_watcher(MODE="overflow", PRIMARY_CAPACITY="20", STEP="10")
    wait_proxy_weights(proxy, (70, 30), proc)
    state = wait_status(proc, url, lambda s: s["weights"] == {"primary": 70, "burst": 30})
    assert state["actuator"] == "haproxy" and "haproxy backend workers" in state["target"]

    served = send_requests(proxy.url, 1000)

    assert sum(served.values()) == 1000 and set(served) <= {"primary", "burst"}, served
    assert abs(served["burst"] / 1000 - 0.30) <= 0.05, served
    assert proxy.weights() == (70, 30), "held while the load stays"


def test_real_traffic_through_the_proxy_bursts_and_returns(
    proxy: HAProxyServer, haproxy_watcher: StartWatcher
) -> None:
    """The signal is the data plane's own count (LOCAL_QUERY on HAProxy's exporter)."""
    proc, url = haproxy_watcher(QUERY=LOCAL_QUERY)
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


def test_a_weight_changed_by_hand_is_noticed_and_decided_again(
    load: LoadExporter, proxy: HAProxyServer, haproxy_watcher: StartWatcher
) -> None:
    load.set_rate(30)
    proc, url = haproxy_watcher()
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


def test_haproxy_killed_holds_reports_not_ready_and_recovers(
    load: LoadExporter, proxy: HAProxyServer, haproxy_watcher: StartWatcher
) -> None:
    load.set_rate(30)
    proc, url = haproxy_watcher(MAX_BACKOFF="1")
    wait_proxy_weights(proxy, (0, 100), proc)
    proxy.kill()

    down = wait_status(proc, url, lambda s: not s["ready"])
    assert "failed calls to haproxy backend workers" in down["not_ready_reason"]
    assert down["actuator_error_kind"] == "unreachable"
    assert "cannot reach the runtime API" in down["actuator_error"]
    assert down["reading_error_kind"] is None, "the readings are fine"
    assert down["write_failures"] >= 3
    assert down["weights"] == {"primary": 0, "burst": 100}, "held, not reset"
    response = httpx.get(url + "/healthz", timeout=5)
    assert response.status_code == 503
    assert metric_value(url, "hashr_watcher_write_errors_total", kind="unreachable") >= 3
    assert metric_value(url, "hashr_watcher_ready") == 0
    assert proc.alive()

    proxy.start()  # back with its config's weights: everything on primary
    wait_proxy_weights(proxy, (0, 100), proc)  # read again, decided again, written
    back = wait_status(proc, url, lambda s: s["ready"], timeout=30)
    assert (back["actuator_error_kind"], back["actuator_error"]) == (None, "")
    assert httpx.get(url + "/healthz", timeout=5).status_code == 200


def test_prometheus_gone_holds_the_weights_and_reports_not_ready_then_resumes(
    load: LoadExporter,
    prometheus: PrometheusServer,
    proxy: HAProxyServer,
    haproxy_watcher: StartWatcher,
) -> None:
    load.set_rate(30)
    proc, url = haproxy_watcher()
    wait_proxy_weights(proxy, (0, 100), proc)
    prometheus.stop()
    load.set_rate(0)  # the original would now read "no answer" as 0 req/s and flip back
    down = wait_status(proc, url, lambda s: not s["ready"])
    assert down["reading_kind"] == down["reading_error_kind"] == "unreachable"
    assert down["actuator_error_kind"] is None, "HAProxy is fine"
    assert down["weights"] == {"primary": 0, "burst": 100}
    response = httpx.get(url + "/healthz", timeout=5)
    assert response.status_code == 503
    assert "bad readings in a row" in response.json()["reason"]
    assert metric_value(url, "hashr_watcher_read_errors_total", kind="unreachable") >= 3
    assert metric_value(url, "hashr_watcher_ready") == 0
    wait_rounds(proc, url, 2)  # blind for two more rounds: still nothing written
    assert proxy.weights() == (0, 100)

    prometheus.start()
    wait_status(proc, url, lambda s: s["ready"], timeout=30)
    assert httpx.get(url + "/healthz", timeout=5).status_code == 200
    # Readings again: the rate is now really low, so after the window it goes back.
    wait_proxy_weights(proxy, (100, 0), proc)


def test_a_dead_burst_worker_seen_by_haproxy_sends_traffic_back_to_primary(
    tmp_path: Path,
    load: LoadExporter,
    proxy: HAProxyServer,
    workers: Workers,
    haproxy_watcher: StartWatcher,
) -> None:
    """The demo's burst-health signal: HAProxy's health checks of server burst."""
    load.set_rate(30)
    proc, url = haproxy_watcher(BURST_ERROR_QUERY=LOCAL_BURST_ERROR_QUERY, BURST_BACKOFF="3")
    burst = workers.burst
    try:
        wait_proxy_weights(proxy, (0, 100), proc)
        burst.stop()  # the burst side dies while it has all the traffic; primary is fine

        wait_proxy_weights(proxy, (100, 0), proc)
        state = wait_status(proc, url, lambda s: s["burst_health"]["healthy"] is False)
        assert state["last_change"]["reason"] == "burst_unhealthy"
        assert state["reading"] > 15, "the load still asks for burst"
        # A round past the back-off (3 s), burst still down: no burst into a dead side.
        changed = state["last_change"]["at"]
        wait_status(proc, url, lambda s: s["at"] > changed + 4)
        assert proxy.weights() == (100, 0)

        burst = ManagedProcess("burst-again", burst.argv, tmp_path, burst.env).start()
        burst.wait_http_ok(f"http://{workers.burst_address}/_healthz")
        wait_proxy_weights(proxy, (0, 100), proc)  # up again in HAProxy's checks: bursts again
    finally:
        burst.stop()


def test_burst_error_ratio_over_the_limit_sends_traffic_back(
    load: LoadExporter, proxy: HAProxyServer, haproxy_watcher: StartWatcher
) -> None:
    """BURST_ERROR_QUERY is any PromQL ratio: here the LoadExporter's failed share to burst."""
    load.set_rate(30, target="primary")
    proc, url = haproxy_watcher(
        BURST_ERROR_QUERY=(
            'sum(rate(hashr_frontend_requests_total{target="burst",outcome="failed"}[5s]))'
            ' / sum(rate(hashr_frontend_requests_total{target="burst"}[5s]))'
        ),
        MAX_BURST_ERROR_RATIO="0.2",
        BURST_BACKOFF="60",
    )
    wait_proxy_weights(proxy, (0, 100), proc)
    load.set_rate(0, target="primary")
    load.set_rate(8, target="burst", outcome="ok")
    load.set_rate(22, target="burst", outcome="failed")
    wait_proxy_weights(proxy, (100, 0), proc)
    state = status(url)
    assert state["last_change"]["reason"] == "burst_unhealthy"
    assert "error ratio" in state["burst_health"]["detail"]
    assert state["reading"] > 15
