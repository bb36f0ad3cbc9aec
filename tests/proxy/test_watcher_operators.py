"""What an operator of a local watcher gets (a real HAProxy, Prometheus and Redis): the decision
ledger on /decisions and in `istio-burst watcher status`, overrides set with
`istio-burst watcher override`, the outage policy with Prometheus really stopped, and each
record sent once to a webhook (a real HTTP server) that a dead one never slows."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from harness.exporter import LoadExporter
from harness.haproxy import HAProxyServer, runtime_command
from harness.metrics import metric_value
from harness.processes import ManagedProcess
from harness.prometheus import PrometheusServer
from harness.redis_server import RedisServer
from harness.watcher import StartWatcher, wait_status, watcher_cli
from harness.webhook import WebhookReceiver
from istio_burst.watcher.overrides import LOCAL_OVERRIDE_KEY
from tests.proxy.conftest import wait_proxy_weights


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A real HTTP server keeping every JSON POST it gets."""
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


def decisions(url: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = httpx.get(url + "/decisions", timeout=5).json()["decisions"]
    return records


def reasons(url: str) -> list[str]:
    return [r["reason"] for r in decisions(url)]


def wait_record(proc: ManagedProcess, url: str, reason: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.alive(), proc.output()
        for record in decisions(url):
            if record["reason"] == reason:
                return record
        time.sleep(0.1)
    raise AssertionError(f"no {reason} record; the ledger: {decisions(url)}\n{proc.output()}")


def test_the_override_cli_pins_the_traffic_expires_and_the_ledger_shows_it(
    load: LoadExporter, proxy: HAProxyServer, own_redis: RedisServer, haproxy_watcher: StartWatcher
) -> None:
    load.set_rate(3)
    proc, url = haproxy_watcher()
    wait_status(proc, url, lambda s: s["ready"])
    done = watcher_cli("override", "burst", "--for", "8s", "--redis-url", own_redis.url)
    assert done.returncode == 0, done.stderr
    assert "override burst until" in done.stdout

    wait_proxy_weights(proxy, (0, 100), proc, timeout=10)  # within a round or two
    state = wait_status(proc, url, lambda s: s["override"] is not None)
    assert state["override"]["target"] == "burst" and state["override"]["source"] == "local"
    applied = wait_record(proc, url, "OverrideApplied")
    assert applied["outcome"] == "written"
    assert (applied["before"], applied["after"]) == (
        {"primary": 100, "burst": 0},
        {"primary": 0, "burst": 100},
    )
    assert applied["reading"] is not None and applied["window"] == "5s"

    # It ends by itself: recorded, and the load (3 req/s) takes traffic back to primary.
    wait_record(proc, url, "OverrideExpired", timeout=20)
    wait_proxy_weights(proxy, (100, 0), proc, timeout=30)
    ended = wait_record(proc, url, "BurstEnded")
    assert ended["outcome"] == "written" and "below LOW 10" in ended["detail"]
    wait_status(proc, url, lambda s: s["override"] is None)

    table = watcher_cli("status", "--url", url)
    assert table.returncode == 0, table.stderr
    for words in ("OverrideApplied", "OverrideExpired", "BurstEnded", "role       single"):
        assert words in table.stdout, table.stdout
    assert "100/0 -> 0/100" in table.stdout

    # Pause: a hand edit stays as it is, until the pause is cleared.
    assert watcher_cli("override", "pause", "--redis-url", own_redis.url).returncode == 0
    wait_status(proc, url, lambda s: (s["override"] or {}).get("target") == "pause")
    runtime_command(proxy.runtime_api, "set weight workers/burst 50")
    runtime_command(proxy.runtime_api, "set weight workers/primary 50")
    paused = wait_status(proc, url, lambda s: s["weights"] == {"primary": 50, "burst": 50})
    assert paused["reason"] == "override"
    cleared = watcher_cli("override", "clear", "--redis-url", own_redis.url)
    assert cleared.stdout.strip() == "override cleared"
    wait_record(proc, url, "OverrideCleared")
    wait_proxy_weights(proxy, (100, 0), proc, timeout=30)


def test_a_missing_env_file_is_named(tmp_path: Path) -> None:
    for command in ("status", "override pause"):
        done = watcher_cli(*command.split(), "--env-file", str(tmp_path / "watcher.env"))
        assert done.returncode != 0
        assert done.stderr.strip() == f"error: --env-file {tmp_path / 'watcher.env'}: no such file"


def test_a_malformed_override_is_refused_visibly_and_ignored(
    load: LoadExporter,
    proxy: HAProxyServer,
    own_redis: RedisServer,
    webhook: WebhookReceiver,
    haproxy_watcher: StartWatcher,
) -> None:
    load.set_rate(30)
    # The webhook in the Slack-compatible form: {"text": ...}
    proc, url = haproxy_watcher(NOTIFY_URL=webhook.url + "/hook", NOTIFY_FORMAT="slack")
    with redis.Redis.from_url(own_redis.url) as client:
        wait_proxy_weights(proxy, (0, 100), proc)
        client.set(LOCAL_OVERRIDE_KEY, orjson.dumps({"override": "sideways", "until": ""}))
        refused = wait_status(proc, url, lambda s: bool(s["override_problem"]))
        assert "'sideways' is not one of primary, burst, pause" in refused["override_problem"]
        assert refused["override"] is None
        record = wait_record(proc, url, "OverrideRefused")
        assert record["outcome"] == "none"
        client.set(LOCAL_OVERRIDE_KEY, orjson.dumps({"override": "primary", "until": "noon"}))
        wait_status(proc, url, lambda s: "'noon' is not an RFC 3339 time" in s["override_problem"])
        assert reasons(url).count("OverrideRefused") == 2, "each refusal once, not every round"
        assert proxy.weights() == (0, 100), "decided as if there were no override"
        bad = watcher_cli("override", "sideways", "--redis-url", own_redis.url)
        assert bad.returncode == 2 and "invalid choice" in bad.stderr

        texts = [b["text"] for b in webhook.wait_for(lambda bodies: len(bodies) >= 3)]
        assert all(set(body) == {"text"} for body in webhook.bodies())
        assert "burst started:" in texts[0] and "100/0 -> 0/100, written" in texts[0]
        assert "override refused: istio-burst.dev/override: 'sideways'" in texts[1]


@pytest.mark.parametrize(
    "case",
    [
        ("hold", 30, (0, 100), (0, 100), "HeldStaleMetrics"),
        ("primary", 30, (0, 100), (100, 0), "FailSafePrimary"),
        ("burst", 3, (100, 0), (0, 100), "FailSafeBurst"),
    ],
    ids=["hold", "primary", "burst"],
)
def test_the_outage_policy_with_prometheus_stopped(
    load: LoadExporter,
    prometheus: PrometheusServer,
    proxy: HAProxyServer,
    haproxy_watcher: StartWatcher,
    case: tuple[str, float, tuple[int, int], tuple[int, int], str],
) -> None:
    policy, rate, before, during, reason = case
    load.set_rate(rate)
    proc, url = haproxy_watcher(OUTAGE_POLICY=policy, OUTAGE_AFTER="2")
    wait_proxy_weights(proxy, before, proc)
    wait_status(proc, url, lambda s: s["ready"])
    prometheus.stop()
    started = wait_record(proc, url, reason)
    assert started["reading"] is None and started["reading_kind"] == "unreachable"
    wait_proxy_weights(proxy, during, proc, timeout=10)
    state = wait_status(proc, url, lambda s: s["outage_since"] is not None)
    assert state["outage_policy"] == policy

    prometheus.start()
    resumed = wait_record(proc, url, "MetricsResumed", timeout=40)
    assert "usable readings again after" in resumed["detail"]
    assert reasons(url).count(reason) == 1, "recorded when it starts, not every round"
    wait_status(proc, url, lambda s: s["outage_since"] is None)


def test_each_record_reaches_the_webhook_once_and_its_secret_is_never_shown(
    load: LoadExporter,
    proxy: HAProxyServer,
    webhook: WebhookReceiver,
    haproxy_watcher: StartWatcher,
) -> None:
    secret = "T0SECRET/B0SECRET/xoxbsecret"
    load.set_rate(30)
    proc, url = haproxy_watcher(NOTIFY_URL=f"{webhook.url}/services/{secret}")
    wait_proxy_weights(proxy, (0, 100), proc)
    load.set_rate(3)
    wait_proxy_weights(proxy, (100, 0), proc)
    kept = decisions(url)
    got = webhook.wait_for(lambda bodies: len(bodies) >= len(kept))
    assert [(b["reason"], b["at"]) for b in got] == [(r["reason"], r["at"]) for r in kept]
    assert [b["reason"] for b in got] == ["BurstStarted", "BurstEnded"]
    assert webhook.received[0][0] == f"/services/{secret}"
    assert metric_value(url, "hashr_watcher_notifications_total", outcome="sent") == 2
    shown = httpx.get(url + "/status", timeout=5).text + httpx.get(url + "/metrics").text
    assert "SECRET" not in shown + proc.output()


def test_a_dead_webhook_slows_no_decision(
    load: LoadExporter, proxy: HAProxyServer, haproxy_watcher: StartWatcher
) -> None:
    # Accepts connections (the backlog) and never answers: every POST waits out its deadline.
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        dead.listen(64)
        load.set_rate(3)
        proc, url = haproxy_watcher(
            NOTIFY_URL=f"http://user:hunter2@127.0.0.1:{dead.getsockname()[1]}/hook",
            NOTIFY_TIMEOUT="30",
            NOTIFY_QUEUE="1",
        )
        wait_status(proc, url, lambda s: s["ready"])
        # Six records: the first waits 30 s for an answer, one more queues, the rest drop.
        for i in range(3):
            load.set_rate(30)
            wait_proxy_weights(proxy, (0, 100), proc)
            load.set_rate(3)
            wait_proxy_weights(proxy, (100, 0), proc)
            assert len(decisions(url)) == 2 * (i + 1)
        # Rounds keep their pace (INTERVAL 0.5 s): 10 rounds take ~5 s, not 10 x 5 s.
        began, first = time.monotonic(), metric_value(url, "hashr_watcher_readings_total")
        wait_status(
            proc,
            url,
            lambda _: metric_value(url, "hashr_watcher_readings_total") >= first + 10,
        )
        assert time.monotonic() - began < 10
        assert metric_value(url, "hashr_watcher_notifications_total", outcome="dropped") >= 1
        wait_status(
            proc,
            url,
            lambda _: metric_value(url, "hashr_watcher_notifications_total", outcome="failed") >= 1,
        )
        assert "hunter2" not in proc.output()
