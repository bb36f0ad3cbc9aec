"""istiod turns the watcher's weights into the frontend proxy's route: read from what istiod
sends a real xDS client (upstream Envoy's /config_dump), never from the objects we wrote; and
Envoy, configured by istiod alone, splits real requests between the real workers so."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.actuators import closing
from harness.istio.envoy import WORKER_HOST, EnvoyProxy, sidecar_node, subset_weights
from harness.istio.istiod import Istiod
from harness.istio.workers import worker_entries
from harness.kube import LocalKube
from harness.redis_server import RedisServer
from harness.services import start_worker
from istio_burst.core.contracts import Weights
from istio_burst.watcher.actuators.istio import IstioActuator
from tests.istio.clusters import applied, objects_on

PUSH_TIMEOUT = 30.0  # istiod debounces pushes by 100 ms; a loaded machine may take seconds


@pytest.fixture(scope="module")
def mesh(
    mesh_kube: LocalKube,
    istiod: Istiod,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """The primary cluster's objects, and a real primary and burst worker registered with
    istiod as WorkloadEntries carrying the subsets' labels (what Pods in each cluster carry)."""
    logs = tmp_path_factory.mktemp("workers")
    with contextlib.ExitStack() as stack:
        ports = {}
        for subset, prefix in (("primary", ""), ("burst", "bursty-")):
            process, url = start_worker(redis_server, logs, prefix)
            stack.callback(process.stop)
            ports[subset] = int(url.rsplit(":", 1)[1])
        with applied(mesh_kube, objects_on("primary") + worker_entries(ports)):
            yield


@pytest.fixture(scope="module")
def frontend_proxy(
    mesh: None, istiod: Istiod, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProxy]:
    node = sidecar_node("default", "frontend", {"app": "frontend"})
    proxy = EnvoyProxy(tmp_path_factory.mktemp("envoy"), istiod.xds_address, node).start()
    yield proxy
    proxy.stop()


@pytest.fixture
async def actuator(
    mesh_kube: LocalKube, mesh: None, tmp_path: Path
) -> AsyncIterator[IstioActuator]:
    kubeconfig = mesh_kube.service_account_kubeconfig(
        "default", "istiowatcher", tmp_path / "watcher.kubeconfig"
    )
    watcher = IstioActuator("default", "worker-virtual-service", kubeconfig=str(kubeconfig))
    async with closing(watcher):
        yield watcher
        await watcher.write(await watcher.read(), Weights(100, 0))


def route_after(proxy: EnvoyProxy, version: str | None) -> tuple[str, dict[str, Any]]:
    """The first route configuration Envoy holds whose version is not `version`."""
    deadline = time.monotonic() + PUSH_TIMEOUT
    while True:
        held = proxy.route()
        if held is not None and held[0] != version:
            return held
        if time.monotonic() > deadline:
            logs = proxy.process.output() if proxy.process else ""
            raise TimeoutError(f"no route pushed after version {version}:\n{logs}")
        time.sleep(0.05)


def settled_route(proxy: EnvoyProxy, quiet: float = 1.0) -> tuple[str, dict[str, Any]]:
    """The route once istiod has stopped pushing what the set-up wrote (no new version for
    `quiet` s), so that the next version is the answer to the next write."""
    held = route_after(proxy, None)
    while True:
        time.sleep(quiet)
        now = route_after(proxy, None)
        if now[0] == held[0]:
            return now
        held = now


def expected(weights: Weights) -> dict[str, int]:
    """istiod leaves out a destination of weight 0."""
    return {subset: w for subset, w in weights.as_dict().items() if w}


async def test_each_watcher_write_reaches_the_frontends_proxy_in_one_push(
    frontend_proxy: EnvoyProxy, actuator: IstioActuator
) -> None:
    version, route = settled_route(frontend_proxy)
    assert subset_weights(route) == {"primary": 100}
    for desired in (
        Weights(90, 10),
        Weights(50, 50),
        Weights(0, 100),
        Weights(73, 27),
        Weights(100, 0),
    ):
        await actuator.write(await actuator.read(), desired)
        version, route = route_after(frontend_proxy, version)
        assert subset_weights(route) == expected(desired), f"the push after writing {desired}"


def served_by(proxy: EnvoyProxy, requests: int) -> Counter[str]:
    """Which cluster's worker answered each of `requests` hash requests sent as the frontend
    sends them (to http://worker-service...), through the proxy."""
    answers: Counter[str] = Counter()
    with httpx.Client(proxy=f"http://127.0.0.1:{proxy.listen_port}", timeout=10) as client:
        for i in range(requests):
            answer = client.post(f"http://{WORKER_HOST}/", json={"str": f"text {i}"})
            answer.raise_for_status()
            answers[answer.json()["cluster"]] += 1
    return answers


async def test_envoy_configured_by_istiod_splits_real_requests_by_the_watchers_weights(
    frontend_proxy: EnvoyProxy, actuator: IstioActuator
) -> None:
    version, _ = settled_route(frontend_proxy)
    for desired in (Weights(0, 100), Weights(70, 30), Weights(100, 0)):
        seen = await actuator.read()
        if seen.weights != desired:
            await actuator.write(seen, desired)
            version, _ = route_after(frontend_proxy, version)
        answers = served_by(frontend_proxy, 200)
        if desired.burst in (0, 100):
            assert answers == Counter({"burst" if desired.burst else "primary": 200})
        else:  # 200 draws at 30 %: 60 expected, standard deviation 6.5; 4 of them allowed
            assert (
                abs(answers["burst"] - 60) <= 26 and answers["primary"] + answers["burst"] == 200
            ), answers
