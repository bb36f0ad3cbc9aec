"""istiod turns the watcher's weights into the frontend proxy's route: read from what istiod
sends a real xDS client (upstream Envoy's /config_dump), never from the objects we wrote; and
Envoy, configured by istiod alone, splits real requests between the real workers so."""

from __future__ import annotations

import contextlib
import json
import re
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
VIRTUAL_SERVICE = "worker-virtual-service"
PROXY_ID = "frontend-local.default"  # how istiod's debug endpoints name the proxy's connection


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
            assert not rivals(mesh_kube), "istiod would route by the oldest VirtualService"
            yield


def rivals(kube: LocalKube) -> list[str]:
    """Other VirtualServices for the worker's host, which istiod merges with ours, oldest first:
    one left behind by another test would make every write here go unseen."""
    listed = json.loads(kube.kubectl("get", "virtualservices", "-A", "-o", "json").stdout)
    return [
        f"{vs['metadata']['namespace']}/{vs['metadata']['name']}"
        for vs in listed["items"]
        if WORKER_HOST in vs["spec"].get("hosts", [])
        and (vs["metadata"]["namespace"], vs["metadata"]["name"]) != ("default", VIRTUAL_SERVICE)
    ]


@pytest.fixture(scope="module")
def frontend_proxy(
    mesh: None, istiod: Istiod, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProxy]:
    node = sidecar_node("default", "frontend", {"app": "frontend"})
    assert PROXY_ID in node["id"]
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
    watcher = IstioActuator("default", VIRTUAL_SERVICE, kubeconfig=str(kubeconfig))
    async with closing(watcher):
        yield watcher
        await watcher.write(await watcher.read(), Weights(100, 0))


def route_after(
    proxy: EnvoyProxy, version: str | None, istiod: Istiod | None = None
) -> tuple[str, dict[str, Any]]:
    """The first route configuration Envoy holds whose version is not `version`."""
    deadline = time.monotonic() + PUSH_TIMEOUT
    while True:
        held = proxy.route()
        if held is not None and held[0] != version:
            return held
        if time.monotonic() > deadline:
            where = stalled(proxy, istiod)
            raise TimeoutError(f"no route pushed after version {version}:\n{where}")
        time.sleep(0.05)


def stalled(proxy: EnvoyProxy, istiod: Istiod | None) -> str:
    """Where a write stopped on its way to Envoy: the API's VirtualService, istiod's copy, the
    route istiod would send the proxy now, what the proxy acknowledged, and both logs' ends."""
    lines = []
    if istiod is not None:
        for label, look in (
            ("the API's VirtualService", lambda: [_api_virtual_service(istiod)]),
            ("istiod's VirtualService", lambda: _istiod_virtual_services(istiod)),
            ("istiod's route now", lambda: _istiod_routes(istiod)),
            ("istiod's sync state", lambda: _istiod_sync(istiod)),
        ):
            try:
                lines += [f"{label}: {found}" for found in look()]
            except Exception as failed:  # a diagnosis must not hide the failure it explains
                lines.append(f"{label}: unavailable ({failed!r})")
        if istiod.process is not None:
            lines.append(f"istiod's log:\n{istiod.process.output(3000)}")
    if proxy.process is not None:
        lines.append(f"envoy's log:\n{proxy.process.output(3000)}")
    return "\n".join(lines)


def _route_of(virtual_service: dict[str, Any]) -> str:
    return f"{virtual_service['metadata'].get('resourceVersion')} {virtual_service['spec']['http']}"


def _api_virtual_service(istiod: Istiod) -> str:
    got = istiod.kube.kubectl("get", "virtualservice", VIRTUAL_SERVICE, "-o", "json")
    return _route_of(json.loads(got.stdout))


def _istiod_virtual_services(istiod: Istiod) -> list[str]:
    return [
        _route_of(config)
        for config in istiod.debug("configz")
        if config.get("kind") == "VirtualService" and config["metadata"]["name"] == VIRTUAL_SERVICE
    ]


def _istiod_routes(istiod: Istiod) -> list[dict[str, int]]:
    dump = istiod.debug("config_dump", proxyID=PROXY_ID, types="rds")
    return [subset_weights(snake_case(config)) for config in dump["configs"]]


def _istiod_sync(istiod: Istiod) -> list[dict[str, Any]]:
    return [
        {key: status.get(key) for key in ("route_sent", "route_acked", "cluster_sent")}
        for status in istiod.debug("syncz")
        if PROXY_ID in status.get("proxy", "")
    ]


def snake_case(value: Any) -> Any:
    """istiod's debug dump in the field names of Envoy's (protobuf JSON's camelCase undone)."""
    if isinstance(value, list):
        return [snake_case(v) for v in value]
    if isinstance(value, dict):
        return {re.sub(r"([A-Z])", r"_\1", k).lower(): snake_case(v) for k, v in value.items()}
    return value


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
    frontend_proxy: EnvoyProxy, actuator: IstioActuator, istiod: Istiod
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
        version, route = route_after(frontend_proxy, version, istiod)
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
    frontend_proxy: EnvoyProxy, actuator: IstioActuator, istiod: Istiod
) -> None:
    version, _ = settled_route(frontend_proxy)
    for desired in (Weights(0, 100), Weights(70, 30), Weights(100, 0)):
        seen = await actuator.read()
        if seen.weights != desired:
            await actuator.write(seen, desired)
            version, _ = route_after(frontend_proxy, version, istiod)
        answers = served_by(frontend_proxy, 200)
        if desired.burst in (0, 100):
            assert answers == Counter({"burst" if desired.burst else "primary": 200})
        else:  # 200 draws at 30 %: 60 expected, standard deviation 6.5; 4 of them allowed
            assert (
                abs(answers["burst"] - 60) <= 26 and answers["primary"] + answers["burst"] == 200
            ), answers
