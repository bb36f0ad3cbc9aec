"""Istio's own gateway controller (istiod in ambient mode) writing the worker HTTPRoute's status:
the watcher tests' stand-in (`PlayedController`) writes exactly what istiod writes, in every
field the watcher reads or the page shows, and the watcher's actuator reads istiod's own status
right: a burst it writes is accepted, a missing burst Service is refused.

istiod runs here with PILOT_ENABLE_AMBIENT=true, as Istio's ambient profile sets it: then it adds
the condition ResolvedWaypoints to every mesh route. So it gets a Kubernetes API of its own: the
session's istiod (`mesh_kube`) is the sidecar install's, and two istiods on one API would take
turns writing the route's status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from harness.actuators import closing
from harness.istio.istiod import Istiod
from harness.kube import LocalKube
from harness.kube.watch import watch_until
from istio_burst.core.contracts import Weights
from istio_burst.watcher.actuators import AcceptanceState
from istio_burst.watcher.actuators.gateway_api import GROUP, PLURAL, VERSION, GatewayAPIActuator
from tests.watcher.gateway_cluster import (
    PARENT,
    ROUTE,
    USE_WAYPOINT,
    Cluster,
    Obj,
    PlayedController,
    gateway_api_namespace,
)

AMBIENT_ISTIOD = {"PILOT_ENABLE_AMBIENT": "true"}  # Istio's ambient profile, pilot.env


@pytest.fixture(scope="module")
def ambient_istiod(istio_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Istiod]:
    """istiod as Istio's ambient profile sets it, on a Kubernetes API of its own."""
    kube = LocalKube(tmp_path_factory.mktemp("ambient-kube")).start()
    try:
        server = Istiod(kube, tmp_path_factory.mktemp("istiod"), istio_bin, env=AMBIENT_ISTIOD)
        server.start()  # stops what it started if it fails
        yield server
        server.stop()
    finally:
        kube.stop()


@pytest.fixture
def cluster(ambient_istiod: Istiod) -> Iterator[Cluster]:
    with gateway_api_namespace(ambient_istiod.kube) as made:
        yield made


@pytest.fixture
async def actuator(cluster: Cluster, tmp_path: Path) -> AsyncIterator[GatewayAPIActuator]:
    """The watcher's actuator, as the ambient overlay's watcher account."""
    kubeconfig = cluster.kube.service_account_kubeconfig(
        cluster.namespace, "istiowatcher", tmp_path / "watcher.kubeconfig"
    )
    made = GatewayAPIActuator(
        cluster.namespace, ROUTE, primary_service="worker-primary",
        burst_service="worker-burst", kubeconfig=str(kubeconfig), timeout=10,
    )  # fmt: skip
    async with closing(made):
        yield made


def without_transition_times(parents: list[Obj]) -> list[Obj]:
    """istiod's status.parents[], but lastTransitionTime (a clock reading) in no condition."""
    return [
        {
            **parent,
            "conditions": [
                {k: v for k, v in c.items() if k != "lastTransitionTime"}
                for c in parent["conditions"]
            ],
        }
        for parent in parents
    ]


def istiod_writes(cluster: Cluster, settled: Callable[[list[Obj]], bool]) -> list[Obj]:
    """The route's status.parents[] once istiod has written it for the route's current
    generation and `settled` holds for it (istiod reacts to a change of a Service too)."""

    def done(routes: list[Obj]) -> bool:
        if not routes:
            return False
        generation = routes[0]["metadata"]["generation"]
        parents = routes[0].get("status", {}).get("parents", [])
        observed = [c["observedGeneration"] for p in parents for c in p["conditions"]]
        return bool(observed) and min(observed) >= generation and settled(parents)

    [route] = watch_until(
        cluster.kube, (GROUP, VERSION, PLURAL), cluster.namespace, name=ROUTE, check=done,
        saw=lambda routes: f"istiod's status for the route: {[r.get('status') for r in routes]}",
        timeout=60,
    )  # fmt: skip
    parents: list[Obj] = route["status"]["parents"]
    return without_transition_times(parents)


def condition(parents: list[Obj], kind: str) -> Obj:
    [parent] = parents
    found: list[Obj] = [c for c in parent["conditions"] if c["type"] == kind]
    [only] = found
    return only


def resolved(status: str) -> Callable[[list[Obj]], bool]:
    return lambda parents: condition(parents, "ResolvedRefs")["status"] == status


def test_the_played_controller_accepts_the_route_as_istiod_does(cluster: Cluster) -> None:
    real = istiod_writes(cluster, resolved("True"))
    assert condition(real, "Accepted")["status"] == "True"
    assert real == [PlayedController(cluster).status()]


def test_the_played_controller_refuses_a_route_without_its_parent_as_istiod_does(
    cluster: Cluster,
) -> None:
    """The parent Service worker-service missing: the route is attached to nothing."""
    istiod_writes(cluster, resolved("True"))
    cluster.delete_service(PARENT[1])
    real = istiod_writes(
        cluster, lambda parents: condition(parents, "Accepted")["status"] == "False"
    )
    assert condition(real, "Accepted")["reason"] == "NoMatchingParent"
    assert real == [PlayedController(cluster).status()]


async def test_a_namespace_without_a_waypoint_is_refused_as_istiod_reports_it(
    cluster: Cluster, actuator: GatewayAPIActuator
) -> None:
    """Without the ambient overlay's use-waypoint label no waypoint applies the route; istiod
    says so only in ResolvedWaypoints' message (True, as are Accepted and ResolvedRefs), and
    the watcher reads the route as refused, in istiod's words."""
    await asyncio.to_thread(istiod_writes, cluster, resolved("True"))
    cluster.kube.kubectl("label", "namespace", cluster.namespace, f"{USE_WAYPOINT}-")
    real = await asyncio.to_thread(
        istiod_writes,
        cluster,
        lambda parents: "missing" in condition(parents, "ResolvedWaypoints")["message"],
    )
    assert [c["status"] for c in real[0]["conditions"]] == ["True", "True", "True"]
    assert real == [PlayedController(cluster).status()]
    seen = await actuator.read()
    assert seen.acceptance.state is AcceptanceState.REFUSED
    assert "in ambient mode, route will not be respected" in seen.acceptance.detail


async def test_a_burst_is_accepted_and_a_missing_burst_service_refused_by_istiod(
    cluster: Cluster, actuator: GatewayAPIActuator
) -> None:
    """The watcher writes 0/100 and reads istiod's acceptance of that generation; without the
    worker-burst Service istiod refuses it (BackendNotFound), and the watcher reads that; back
    at 100/0 istiod accepts the route again, worker-burst still missing: it checks only the
    backends meant to get traffic. The stand-in writes the same each time."""
    played = PlayedController(cluster)
    await asyncio.to_thread(istiod_writes, cluster, resolved("True"))

    await actuator.write(await actuator.read(), Weights(0, 100))
    real = await asyncio.to_thread(istiod_writes, cluster, resolved("True"))
    assert real == [played.status()]
    seen = await actuator.read()
    assert (seen.weights, seen.acceptance.state) == (Weights(0, 100), AcceptanceState.APPLIED)

    cluster.delete_service("worker-burst")
    real = await asyncio.to_thread(istiod_writes, cluster, resolved("False"))
    assert condition(real, "ResolvedRefs")["reason"] == "BackendNotFound"
    assert real == [played.status()]
    seen = await actuator.read()
    assert seen.acceptance.state is AcceptanceState.REFUSED
    assert "ResolvedRefs False (BackendNotFound) backend(worker-burst." in seen.acceptance.detail

    await actuator.write(seen, Weights(100, 0))
    real = await asyncio.to_thread(istiod_writes, cluster, resolved("True"))
    assert real == [played.status()]
    seen = await actuator.read()
    assert (seen.weights, seen.acceptance.state) == (Weights(100, 0), AcceptanceState.APPLIED)
