"""A Redis outage at 30 req/s, in the demo: both workers fail together (their /_healthz and their
publishes need Redis), which is not a burst failure. Once Redis is back, traffic is on burst
again within seconds; the watcher never judges burst unhealthy, never moves the weights."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from harness.frontend import Page
from harness.metrics import metric_value
from harness.processes import ManagedProcess
from istio_burst.core.contracts import PROXY_BACKEND
from tests.demo.conftest import children_of, demo_argv, demo_ports

PASSWORD = "shared-outage-test"


def proxy_counter(ports: dict[str, int], name: str, server: str, code: str = "") -> float:
    """One per-server counter from HAProxy's exporter."""
    labels = {"proxy": PROXY_BACKEND, "server": server, **({"code": code} if code else {})}
    return metric_value(f"http://127.0.0.1:{ports['proxy-metrics']}", name, **labels)


def burst_majority(batch: dict[str, dict[str, int]]) -> bool:
    counts = batch["counts"]
    return counts.get("burst", 0) > counts.get("primary", 0)


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(2.0, id="2s-5xx-only"),  # the workers answer 503; checks fail, not yet down
        pytest.param(5.0, id="5s-both-down"),  # HAProxy's checks take both workers down
    ],
)
async def test_a_redis_restart_does_not_keep_traffic_off_burst(
    tmp_path: Path, outage: float
) -> None:
    ports = demo_ports()
    argv = [*demo_argv(tmp_path / "state", ports), "--redis-password", PASSWORD]
    demo = ManagedProcess("demo", argv, tmp_path).start()
    try:
        demo.wait_until(lambda: "String Hashr is running" in demo.output(), 90, "demo ready")
        assert PASSWORD not in demo.output(), "the password is never printed"
        redis_pid = next(
            pid
            for pid in children_of(demo.pid)
            if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
        redis_url = f"redis://:{PASSWORD}@127.0.0.1:{ports['redis']}/0"
        watcher = f"http://127.0.0.1:{ports['watcher']}"

        async with Page(f"http://127.0.0.1:{ports['frontend']}") as page:
            await page.set_frequency(30)
            await page.wait_for("hashes", burst_majority, since=page.mark(), timeout=40)
            before = httpx.get(watcher + "/status", timeout=5).json()
            assert before["weights"] == {"primary": 0, "burst": 100}, before

            # The outage: Redis stops answering, then drops every connection, as a restart does.
            outage_started = time.monotonic()
            os.kill(redis_pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(outage)
            finally:
                os.kill(redis_pid, signal.SIGCONT)
            with redis.Redis.from_url(redis_url, socket_timeout=5) as client:
                client.client_kill_filter(_type="normal", skipme=True)
                client.client_kill_filter(_type="pubsub")
            outage_ended = time.monotonic()

            # Serving again: hashes published after Redis returned (not the ones it held).
            returned_at, fresh = time.time(), list[dict[str, Any]]()
            deadline = time.monotonic() + outage + 40
            while len(fresh) < 30:
                assert time.monotonic() < deadline, f"only {len(fresh)} hashes since the outage"
                mark = page.mark()
                await page.wait_for("hashes", since=mark, timeout=10)
                fresh += [h for h in page.hashes(mark) if h["published_at"] > returned_at]
            off_burst = time.monotonic() - outage_started
            share = sum(h["cluster"] == "burst" for h in fresh) / len(fresh)
            print(
                f"{share:.0%} of {len(fresh)} hashes on burst {time.monotonic() - outage_ended:.1f}"
                f" s after Redis returned ({off_burst:.1f} s after the {outage:g} s outage began)"
            )
            assert share > 0.8, f"only {share:.0%} of the hashes since the outage were bursty"
            assert off_burst < outage + 15, "the old watcher kept burst off for its 30 s back-off"

        # Burst did fail (its answers, or its checks), and so did primary's checks: shared.
        assert proxy_counter(ports, "haproxy_server_check_failures_total", "primary") >= 1
        if outage >= 5:
            for server in ("primary", "burst"):
                downs = proxy_counter(ports, "haproxy_server_check_up_down_total", server)
                assert downs >= 1, f"{server} was never marked down"
        else:
            burst_5xx = proxy_counter(ports, "haproxy_server_http_responses_total", "burst", "5xx")
            assert burst_5xx >= 1, "burst answered no 5xx: the outage tested nothing"

        after = httpx.get(watcher + "/status", timeout=5).json()
        assert after["weights"] == {"primary": 0, "burst": 100}, after
        assert after["last_change"] == before["last_change"], "no change during the outage"
        # The decisions are counted (so a zero below is a real zero, not a missing series).
        assert metric_value(watcher, "hashr_watcher_decisions_total") > 0
        for reason in ("burst_unhealthy", "burst_backoff"):
            for decision in ("to_primary", "hold"):
                assert (
                    metric_value(
                        watcher, "hashr_watcher_decisions_total", decision=decision, reason=reason
                    )
                    == 0
                ), (decision, reason)
        assert demo.alive(), demo.output()

        # The Redis every service used: password only, 127.0.0.1 only, the password in no log.
        with (
            redis.Redis(port=ports["redis"], socket_timeout=5) as anonymous,
            pytest.raises(redis.AuthenticationError),
        ):
            anonymous.ping()
        with redis.Redis.from_url(redis_url, socket_timeout=5) as client:
            config = client.config_get("bind") | client.config_get("protected-mode")
        assert config == {"bind": "127.0.0.1", "protected-mode": "yes"}, config
        for log in (tmp_path / "state" / "logs").glob("*.log"):
            assert PASSWORD not in log.read_text(errors="replace"), log.name
    finally:
        demo.stop()
