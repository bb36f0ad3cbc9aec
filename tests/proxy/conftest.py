"""Real workers behind a real HAProxy (the demo's config), a real Prometheus scraping it and a
LoadExporter, and a paced sender of real hash requests through the proxy."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from harness.exporter import LoadExporter
from harness.haproxy import HAProxyServer
from harness.processes import ManagedProcess
from harness.prometheus import PrometheusServer
from harness.redis_server import RedisServer
from harness.services import start_worker
from harness.watcher import StartWatcher, watchers


@dataclass
class Workers:
    primary: ManagedProcess
    burst: ManagedProcess
    primary_address: str  # host:port
    burst_address: str


@pytest.fixture
def workers(tmp_path: Path, own_redis: RedisServer) -> Iterator[Workers]:
    """Worker primary (no prefix) and worker burst (`bursty-`), real, on the test's Redis."""
    started: list[ManagedProcess] = []
    try:
        primary, primary_url = start_worker(own_redis, tmp_path, CLUSTER="primary")
        started.append(primary)
        burst, burst_url = start_worker(own_redis, tmp_path, prefix="bursty-", CLUSTER="burst")
        started.append(burst)
        yield Workers(
            primary, burst, primary_url.removeprefix("http://"), burst_url.removeprefix("http://")
        )
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def proxy(tmp_path: Path, workers: Workers) -> Iterator[HAProxyServer]:
    workdir = tmp_path / "haproxy"
    workdir.mkdir()
    server = HAProxyServer(workdir, workers.primary_address, workers.burst_address).start()
    yield server
    server.stop()


@pytest.fixture
def prometheus(
    tmp_path: Path, proxy: HAProxyServer, load: LoadExporter
) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping HAProxy's exporter and the LoadExporter every second."""
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    server = PrometheusServer(
        workdir, {"haproxy": [proxy.metrics_address], "frontend": [load.target]}
    )
    server.start()
    try:
        server.wait_for_value('min(up{service=~"haproxy|frontend"})', lambda v: v == 1, 30)
        yield server
    finally:
        server.stop()


@pytest.fixture
def haproxy_watcher(
    tmp_path: Path, prometheus: PrometheusServer, proxy: HAProxyServer, own_redis: RedisServer
) -> Iterator[StartWatcher]:
    """`haproxy_watcher(**env) -> (process, url)`: a local watcher with ACTUATOR=haproxy on this
    test's HAProxy, Prometheus and Redis, more env as keyword arguments; every watcher started
    is stopped when the test ends."""
    env = proxy.watcher_env()
    with watchers(tmp_path, prometheus.url, **env, REDIS_URL=own_redis.url) as start:
        yield start


def wait_proxy_weights(
    proxy: HAProxyServer, want: tuple[int, int], watcher: ManagedProcess, timeout: float = 40
) -> None:
    """Until HAProxy's weights are `want`; fails early (with its log) if the watcher exits."""
    deadline = time.monotonic() + timeout
    seen = proxy.weights()
    while seen != want:
        assert time.monotonic() < deadline, f"weights {seen}, never {want}:\n{watcher.output()}"
        assert watcher.alive(), watcher.output()
        time.sleep(0.1)
        seen = proxy.weights()


def cluster_of(response: httpx.Response) -> str:
    if response.status_code != 200:
        return f"http {response.status_code}"
    value = str(orjson.loads(response.content)["value"])
    return "burst" if value.startswith("bursty-") else "primary"


def send_requests(url: str, count: int) -> Counter[str]:
    """`count` hash requests through the proxy, one after another; who served each."""
    served: Counter[str] = Counter()
    with httpx.Client(timeout=10) as client:
        for i in range(count):
            served[cluster_of(client.post(url + "/", json={"str": f"split {i}"}))] += 1
    return served


class PacedSender:
    """Real hash requests through the proxy at a rate the test sets, counting who served them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.rate = 0.0
        self.served: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paced-sender", daemon=True)

    def __enter__(self) -> PacedSender:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                if self.rate <= 0:
                    self._stop.wait(0.05)
                    next_at = time.monotonic()
                    continue
                try:
                    response = client.post(self.url + "/", json={"str": "paced"})
                    self.served[cluster_of(response)] += 1
                except httpx.HTTPError as exc:
                    self.served[type(exc).__name__] += 1
                next_at += 1 / self.rate
                self._stop.wait(max(0.0, next_at - time.monotonic()))
