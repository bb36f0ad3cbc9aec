"""The watcher's reaction times and its steadiness, with a real Prometheus scraping every second.

A real `istio-burst watcher` (haproxy actuator, default settings: 1 s interval, HIGH 15, LOW 10,
10 s stabilization window, 5 s dwell) reads a request rate from a real Prometheus that scrapes,
every second, an exporter whose request counter this bench drives. Weight changes are timed as
the data plane has them: the weights of a real HAProxy (the demo's config), polled on its runtime
API every 50 ms.

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
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.table import Row, print_table
from harness.exporter import LoadExporter
from harness.haproxy import HAProxyServer
from harness.metrics import metric_value
from harness.ports import free_port
from harness.prometheus import PrometheusServer
from harness.redis_server import RedisServer
from harness.watcher import start_watcher
from istio_burst.core.contracts import BURST_ONLY, PRIMARY_ONLY, Weights

WINDOW = 10.0
HIGH = 15.0


def _weights(proxy: HAProxyServer) -> Weights:
    return Weights(*proxy.weights())


def _wait_weights(proxy: HAProxyServer, want: Weights, timeout: float) -> float | None:
    """Seconds until HAProxy has the weights `want`, or None."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _weights(proxy) == want:
            return time.monotonic() - started
        time.sleep(0.05)
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
    with tempfile.TemporaryDirectory(prefix="bench-watcher-") as tmp, ExitStack() as running:
        # Each process is stopped however the bench ends, from the moment it started.
        workdir = Path(tmp)
        redis_server = RedisServer(workdir).start()
        running.callback(redis_server.stop)
        load = LoadExporter().start()
        running.callback(load.stop)
        prom_dir = workdir / "prometheus"
        prom_dir.mkdir()
        prometheus = PrometheusServer(prom_dir, {"frontend": [load.target]}).start()
        running.callback(prometheus.stop)
        (workdir / "haproxy").mkdir()
        nowhere = f"127.0.0.1:{free_port()}"  # weights are set whether the servers are up or not
        proxy = HAProxyServer(workdir / "haproxy", nowhere, nowhere).start()
        running.callback(proxy.stop)
        load.set_rate(5)
        watcher, url = start_watcher(
            workdir,
            prometheus.url,
            ACTUATOR="haproxy",
            HAPROXY_RUNTIME_API=proxy.runtime_api,
            REDIS_URL=redis_server.host_port,
            INTERVAL="1",
            MIN_DWELL="5",
            STABILIZATION_WINDOW=str(WINDOW),
            HIGH=str(HIGH),
            LOW="10",
        )
        running.callback(watcher.stop)
        _wait_reading(url, 4, 6)

        load.set_rate(30)
        to_burst = _wait_weights(proxy, BURST_ONLY, 30)
        _wait_reading(url, 25, 35)

        load.set_rate(3)
        back = _wait_weights(proxy, PRIMARY_ONLY, 60)
        _wait_reading(url, 2, 4)
        time.sleep(6)  # past the dwell time

        writes_before = metric_value(url, "hashr_watcher_writes_total")
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < oscillation_seconds:
            load.set_rate(HIGH * (1 + 0.2 * math.sin(2 * math.pi * elapsed / 10)))
            time.sleep(0.25)
        changes = int(metric_value(url, "hashr_watcher_writes_total") - writes_before)
        load.set_rate(0)

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
