from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.exporter import LoadExporter
from harness.kube import LocalKube
from harness.kube.front import KubeFront, virtual_service
from harness.prometheus import PrometheusServer
from harness.watcher import StartWatcher, watchers
from istio_burst.watcher.app import build_watcher, close_watcher
from istio_burst.watcher.loop import Watcher
from istio_burst.watcher.settings import WatcherSettings
from tests.watcher.fake_http import ScriptedServer
from tests.watcher.rounds import Clock


@pytest.fixture
def prometheus(tmp_path: Path, load: LoadExporter) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping `load` every second, with its first scrape done."""
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    server = PrometheusServer(workdir, {"frontend": [load.target]})
    server.start()
    try:
        server.wait_for_value('up{service="frontend"}', lambda v: v == 1, timeout=30)
        yield server
    finally:
        server.stop()


@pytest.fixture
def kube(local_kube: LocalKube) -> Iterator[KubeFront]:
    """The real API server, through a recording proxy, in a namespace of this test's own with
    the watcher's ServiceAccount, Role and RoleBinding and the worker VirtualService at 100/0."""
    api = KubeFront(local_kube).start()
    api.put(virtual_service(100, 0))
    yield api
    api.stop()
    assert api.rejected == [], f"the watcher wrote invalid VirtualServices: {api.rejected}"


@pytest.fixture
def kube_watcher(kube: KubeFront, prom: ScriptedServer, tmp_path: Path) -> Iterator[StartWatcher]:
    """start(**env) runs an `istio-burst watcher` process on `kube` and `prom` (PUBLISH_STATE
    false, then `env`); every one started is stopped at the end."""
    env = kube.watcher_env(tmp_path)
    with watchers(tmp_path, prom.url, **env, PUBLISH_STATE="false") as start:
        yield start


@pytest.fixture
def prom() -> Iterator[ScriptedServer]:
    """A scripted Prometheus: the test sets its answer."""
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest.fixture
async def make_watcher(kube: KubeFront, prom: ScriptedServer, tmp_path: Path) -> AsyncIterator[Any]:
    """Builds in-process watchers on `kube` and `prom` with a test clock; closes them after."""
    defaults = {
        "prometheus_url": prom.url,
        "query": "sum(rate(istio_requests_total[1m]))",
        "actuator": "istio",
        "namespace": kube.namespace,
        "kubeconfig": str(kube.kubeconfig(tmp_path / "kubeconfig")),
        "write_timeout": 1.0,
    }
    async with in_process_watchers(defaults) as make:
        yield make


@asynccontextmanager
async def in_process_watchers(defaults: dict[str, Any]) -> AsyncIterator[Any]:
    """make(**overrides) builds a watcher on a test clock (no dwell, no window, no Redis);
    every one made is closed at the end."""
    made: list[Watcher] = []

    def make(**overrides: Any) -> Watcher:
        settings = WatcherSettings(
            **{
                "min_dwell": 0,
                "stabilization_window": 0,
                "max_failures": 3,
                "publish_state": False,
                **defaults,
                "kube_events": False,  # these tests count the VirtualService's requests
                **overrides,
            }
        )
        watcher = build_watcher(settings)
        watcher.clock = Clock()
        made.append(watcher)
        return watcher

    try:
        yield make
    finally:
        for watcher in made:
            await close_watcher(watcher)
