"""istiod turns the watcher's weights into the frontend proxy's route: read from what istiod
sends a real xDS client (upstream Envoy's /config_dump), never from the objects we wrote."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.istio.envoy import EnvoyProxy, sidecar_node, subset_weights
from harness.istio.istiod import Istiod
from harness.istio.workers import worker_entries
from harness.kube import LocalKube
from istio_burst.core.contracts import Weights
from istio_burst.watcher.actuators.istio import IstioActuator
from tests.istio.clusters import applied, objects_on

PUSH_TIMEOUT = 30.0  # istiod debounces pushes by 100 ms; a loaded machine may take seconds


@pytest.fixture(scope="module")
def mesh(mesh_kube: LocalKube, istiod: Istiod) -> Iterator[None]:
    """The primary cluster's objects, and a primary and a burst worker registered with istiod
    as WorkloadEntries carrying the subsets' labels (what Pods in each cluster would carry)."""
    workers = worker_entries({"primary": 18081, "burst": 18082})
    with applied(mesh_kube, objects_on("primary") + workers):
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
    yield watcher
    await watcher.write(await watcher.read(), Weights(100, 0))
    await watcher.close()


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


def expected(weights: Weights) -> dict[str, int]:
    """istiod leaves out a destination of weight 0."""
    return {subset: w for subset, w in weights.as_dict().items() if w}


async def test_each_watcher_write_reaches_the_frontends_proxy_in_one_push(
    frontend_proxy: EnvoyProxy, actuator: IstioActuator
) -> None:
    version, route = route_after(frontend_proxy, None)
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
