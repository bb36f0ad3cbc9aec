"""The watcher's reaction times and its steadiness, with a real Prometheus scraping every second.

A real `istio-burst watcher` (local actuator, default settings: 1 s interval, HIGH 15, LOW 10,
10 s stabilization window, 5 s dwell) reads the local demo's query from a real Prometheus that
scrapes, every second, an exporter whose request counter this bench drives. Weight changes are
timed as the frontend's router sees them: on the Redis routing channel.

- 5 -> 30 req/s: seconds until the weights go to burst (target <= 5 s);
- 30 -> 3 req/s: seconds until they come back (target <= window + 5 s);
- load oscillating +-20 % around HIGH (12..18 req/s, 10 s period): weight changes made
  (target <= 1). WATCHER_BENCH_OSCILLATION_SECONDS sets its length: 30 by default for a quick
  run, 120 for the full one.

    .venv/bin/python -m bench.watcher
    WATCHER_BENCH_OSCILLATION_SECONDS=120 .venv/bin/python -m bench.watcher
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import httpx
import redis

from bench.table import Row, print_table
from istio_burst.core.contracts import BURST_ONLY, PRIMARY_ONLY, ROUTING_CHANNEL, Weights
from tests.support.channel import next_message
from tests.support.exporter import LoadExporter
from tests.support.prometheus import PrometheusServer
from tests.support.redis_server import RedisServer
from tests.support.watcher import start_watcher

WINDOW = 10.0
HIGH = 15.0


def _wait_weights(pubsub: redis.client.PubSub, want: Weights, timeout: float) -> float | None:
    """Seconds until `want` is published on the routing channel, or None."""
    started = time.monotonic()
    while (left := timeout - (time.monotonic() - started)) > 0:
        raw = next_message(pubsub, left)
        if raw is not None and Weights.decode(raw) == want:
            return time.monotonic() - started
    return None


def _wait_reading(url: str, low: float, high: float, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reading = httpx.get(url + "/status", timeout=5).json().get("reading")
        if reading is not None and low <= reading <= high:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the watcher's reading never settled in {low}..{high}")


def _fmt(seconds: float | None, timeout: float) -> str:
    return f"{seconds:.1f} s" if seconds is not None else f"> {timeout:.0f} s (no change)"


def main() -> list[Row]:
    oscillation_seconds = float(os.environ.get("WATCHER_BENCH_OSCILLATION_SECONDS", "30"))
    with tempfile.TemporaryDirectory(prefix="bench-watcher-") as tmp:
        workdir = Path(tmp)
        redis_server = RedisServer(workdir).start()
        load = LoadExporter().start()
        prom_dir = workdir / "prometheus"
        prom_dir.mkdir()
        prometheus = PrometheusServer(prom_dir, {"frontend": [load.target]}).start()
        watcher = None
        client = redis.Redis.from_url(redis_server.url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(ROUTING_CHANNEL)
            load.set_rate(5)
            watcher, url = start_watcher(
                workdir,
                prometheus.url,
                ACTUATOR="local",
                REDIS_URL=redis_server.host_port,
                INTERVAL="1",
                MIN_DWELL="5",
                STABILIZATION_WINDOW=str(WINDOW),
                HIGH=str(HIGH),
                LOW="10",
            )
            _wait_reading(url, 4, 6)

            load.set_rate(30)
            to_burst = _wait_weights(pubsub, BURST_ONLY, 30)
            _wait_reading(url, 25, 35)

            load.set_rate(3)
            back = _wait_weights(pubsub, PRIMARY_ONLY, 60)
            _wait_reading(url, 2, 4)
            time.sleep(6)  # past the dwell time

            changes = 0
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < oscillation_seconds:
                load.set_rate(HIGH * (1 + 0.2 * math.sin(2 * math.pi * elapsed / 10)))
                if next_message(pubsub, 0.25) is not None:
                    changes += 1
            load.set_rate(0)
        finally:
            if watcher is not None:
                watcher.stop()
            pubsub.close()
            client.close()
            prometheus.stop()
            load.stop()
            redis_server.stop()

    return [
        Row("watcher 5->30 req/s", "to burst", _fmt(to_burst, 30), "<= 5 s"),
        Row(
            "watcher 30->3 req/s",
            "back to primary",
            _fmt(back, 60),
            f"<= {WINDOW + 5:.0f} s (window {WINDOW:.0f} s + 5)",
        ),
        Row(
            f"watcher {oscillation_seconds:.0f} s at 12..18 req/s",
            "weight changes",
            str(changes),
            "<= 1",
        ),
    ]


if __name__ == "__main__":
    print_table(main(), "watcher benchmark")
