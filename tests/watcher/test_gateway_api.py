"""ACTUATOR=gateway-api against the real kube-apiserver with the Gateway API v1.6.1 CRDs.

Each test gets a namespace of its own on the session's API server (`local_kube`), holding the
project's own worker-route HTTPRoute and worker Services (gateway-api-manifests/) and the
watcher's ServiceAccount, Role and RoleBinding as the ambient overlay renders them: the watcher
runs with that account's token, so its RBAC is tested too. No gateway controller runs here: the
test plays it (`PlayedController`), writing through the status subresource what istiod in ambient
mode writes for the route as the namespace stands; tests/istio/test_istiod_route_status.py pins
that to the real istiod's status. The watcher's rounds run in-process on a test clock with a
scripted Prometheus.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.kube import LocalKube
from istio_burst.watcher.actuators import AcceptanceState
from istio_burst.watcher.actuators.gateway_api import VERBS, acceptance_of
from istio_burst.watcher.loop import Watcher
from tests.watcher.conftest import in_process_watchers
from tests.watcher.fake_http import ScriptedServer
from tests.watcher.gateway_cluster import (
    AMBIENT,
    CONTROLLER,
    NO_WAYPOINT,
    ROUTE,
    ROUTING,
    Cluster,
    Obj,
    PlayedController,
    gateway_api_namespace,
    rendered,
)
from tests.watcher.rounds import load, next_round


@pytest.fixture
def cluster(local_kube: LocalKube) -> Iterator[Cluster]:
    with gateway_api_namespace(local_kube) as made:
        yield made


@pytest.fixture
def controller(cluster: Cluster) -> PlayedController:
    return PlayedController(cluster)


@pytest.fixture
async def make_watcher(
    cluster: Cluster, prom: ScriptedServer, tmp_path: Path
) -> AsyncIterator[Any]:
    """In-process watchers on the route, as the ambient overlay's watcher account."""
    kubeconfig = cluster.kube.service_account_kubeconfig(
        cluster.namespace, "istiowatcher", tmp_path / "watcher-kubeconfig"
    )
    defaults = {
        "prometheus_url": prom.url,
        "actuator": "gateway-api",
        "namespace": cluster.namespace,
        "kubeconfig": str(kubeconfig),
        "burst_backoff": 0,
        # Rounds are 100 s apart on the test clock: only the deadline test meets it.
        "acceptance_deadline": 100_000,
        "write_timeout": 10.0,
    }
    async with in_process_watchers(defaults) as make:
        yield make


def routing_state(watcher: Watcher) -> str:
    return str(watcher.state.routing["state"])


def test_the_watcher_needs_exactly_get_and_patch_on_httproutes() -> None:
    assert VERBS == ("get", "patch")


async def test_bursts_and_returns_through_the_httproute_once_accepted(
    cluster: Cluster, controller: PlayedController, prom: ScriptedServer, make_watcher: Any
) -> None:
    controller.report()
    before = cluster.route()
    watcher = make_watcher()

    load(prom, 30)
    await next_round(watcher)
    assert cluster.weights() == (0, 100)
    after = cluster.route()
    for side in (before, after):  # nothing but the two weights changed
        for ref in side["spec"]["rules"][0]["backendRefs"]:
            ref.pop("weight")
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert watcher.state.weights == {"primary": 0, "burst": 100}
    assert routing_state(watcher) == "pending", "written, not yet accepted"
    assert watcher.state.routing["target"] == f"httproute {cluster.namespace}/{ROUTE}"

    await next_round(watcher)  # the controller has not seen the new generation yet
    assert routing_state(watcher) == "pending"
    controller.report()
    await next_round(watcher)
    assert routing_state(watcher) == "applied"

    load(prom, 3)
    await next_round(watcher)
    assert cluster.weights() == (100, 0)
    assert routing_state(watcher) == "pending"
    controller.report()
    await next_round(watcher)
    assert routing_state(watcher) == "applied"
    assert watcher.write_failures == 0


async def test_decisions_are_events_regarding_the_httproute(
    cluster: Cluster, controller: PlayedController, prom: ScriptedServer, make_watcher: Any
) -> None:
    """With ACTUATOR=gateway-api the Events are about the HTTPRoute, written with the ambient
    overlay's Role, and `kubectl events --for` the route shows them."""
    controller.report()
    watcher = make_watcher(kube_events=True)
    load(prom, 30)
    await next_round(watcher)
    assert cluster.weights() == (0, 100)
    for sink in watcher.reporter.ledger.sinks:
        await sink.close()  # sends what is queued, as at shutdown

    listed = cluster.kube.kubectl(
        "get", "events.events.k8s.io", "-n", cluster.namespace, "-o", "json"
    )
    [event] = orjson.loads(listed.stdout)["items"]
    assert event["regarding"] == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "namespace": cluster.namespace,
        "name": ROUTE,
    }
    assert (event["reason"], event["type"]) == ("BurstStarted", "Normal")
    assert "30 req/s above HIGH 15" in event["note"]
    shown = cluster.kube.kubectl(
        "events", "--for", f"httproute.gateway.networking.k8s.io/{ROUTE}", "-n", cluster.namespace
    ).stdout
    assert "BurstStarted" in shown


async def test_a_missing_burst_service_sends_traffic_back_and_burst_waits_its_backoff(
    cluster: Cluster,
    controller: PlayedController,
    prom: ScriptedServer,
    make_watcher: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Istio reports a missing backend only while the route sends it traffic: back at 100/0 the
    route is accepted again, worker-burst still missing, and burst waits BURST_BACKOFF, then,
    refused again, twice as long."""
    caplog.set_level(logging.INFO)
    controller.report()
    watcher = make_watcher(burst_backoff=250)  # rounds are 100 s apart: 2 rounds, then 4
    load(prom, 30)
    await next_round(watcher)
    assert cluster.weights() == (0, 100)

    cluster.delete_service("worker-burst")  # its share of the traffic would get 500s
    controller.report()
    await next_round(watcher)
    assert routing_state(watcher) == "refused"
    await next_round(watcher)
    assert cluster.weights() == (100, 0), "back to primary"
    assert watcher.state.reason == "burst_unhealthy"
    assert "BackendNotFound" in watcher.state.detail
    assert "backing off 250 s" in watcher.state.detail
    assert "BackendNotFound" in watcher.state.burst_health["detail"]
    assert any(
        r.levelno == logging.WARNING and "refused" in r.getMessage() for r in caplog.records
    ), "the logs say why"

    controller.report()  # 100/0 sends worker-burst nothing: accepted, the Service still missing
    await next_round(watcher)
    assert routing_state(watcher) == "applied"
    for _ in range(2):
        await next_round(watcher)
        assert cluster.weights() == (100, 0)
        assert watcher.state.reason == "burst_backoff", "the load asks for burst, burst waits"

    # Past the back-off burst is tried again; still missing, it is refused again.
    await next_round(watcher)
    assert cluster.weights() == (0, 100)
    controller.report()
    await next_round(watcher)
    assert routing_state(watcher) == "refused"
    await next_round(watcher)
    assert cluster.weights() == (100, 0)
    assert "backing off 500 s (2nd failure in a row" in watcher.state.detail

    # The Service exists again: the next try, after the doubled back-off, holds.
    routing = rendered(cluster.kube, ROUTING)
    cluster.apply([o for o in routing if o["metadata"]["name"] == "worker-burst"])
    controller.report()
    await next_round(watcher)
    assert routing_state(watcher) == "applied"
    for _ in range(4):
        await next_round(watcher)
        assert cluster.weights() == (100, 0)
        assert watcher.state.reason == "burst_backoff", "twice as many rounds as the first time"
        assert "backing off 500 s" in watcher.state.detail
    await next_round(watcher)
    assert cluster.weights() == (0, 100)
    controller.report()
    for _ in range(2):
        await next_round(watcher)
        assert routing_state(watcher) == "applied"
        assert cluster.weights() == (0, 100)


async def test_a_controller_that_stops_answering_sends_traffic_back_after_the_deadline(
    cluster: Cluster, controller: PlayedController, prom: ScriptedServer, make_watcher: Any
) -> None:
    controller.report()
    watcher = make_watcher(acceptance_deadline=30)
    load(prom, 30)
    await next_round(watcher)
    assert cluster.weights() == (0, 100)

    # From now on the controller writes nothing at all.
    await next_round(watcher, seconds=10)
    assert routing_state(watcher) == "pending"
    assert cluster.weights() == (0, 100), "within the deadline: wait"
    await next_round(watcher, seconds=25)
    assert cluster.weights() == (100, 0), "not accepted in time: back to primary"
    assert watcher.state.reason == "burst_unhealthy"
    assert "not_accepted" in watcher.state.detail
    assert "within 30 s" in watcher.state.detail
    assert routing_state(watcher) == "pending", "the write back to primary, in turn"

    # The write back to primary is not accepted either: burst is not tried again.
    for _ in range(3):
        await next_round(watcher, seconds=60)
        assert cluster.weights() == (100, 0)
    assert routing_state(watcher) == "not_accepted"

    controller.report()  # the controller is back and accepts 100/0
    await next_round(watcher)
    await next_round(watcher)
    assert cluster.weights() == (0, 100)


async def test_an_admin_edit_of_the_weights_is_undone(
    cluster: Cluster, controller: PlayedController, prom: ScriptedServer, make_watcher: Any
) -> None:
    controller.report()
    watcher = make_watcher()
    load(prom, 30)
    await next_round(watcher)
    controller.report()
    await next_round(watcher)
    assert routing_state(watcher) == "applied"

    cluster.edit_weights(500_000, 500_000)  # relative weights: 50/50
    await next_round(watcher)
    assert cluster.weights() == (0, 100), "the watcher's decision stands"
    assert watcher.state.last_change is not None
    assert watcher.state.last_change.old == {"primary": 50, "burst": 50}
    assert routing_state(watcher) == "pending"


async def test_a_rule_that_also_sends_traffic_elsewhere_is_refused(
    cluster: Cluster,
    prom: ScriptedServer,
    make_watcher: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = cluster.route()
    refs = route["spec"]["rules"][0]["backendRefs"]
    refs.append({"name": "worker-canary", "port": 80, "weight": 10})
    answer = cluster.http.put(cluster.path, json=route)
    answer.raise_for_status()
    generation = answer.json()["metadata"]["generation"]

    watcher = make_watcher()
    load(prom, 30)
    await next_round(watcher)
    assert cluster.route()["metadata"]["generation"] == generation, "nothing written"
    assert watcher.write_failures == 1
    assert cluster.weights() == (100, 0)
    (refusal,) = [
        r.getMessage() for r in caplog.records if "read failed (invalid)" in r.getMessage()
    ]
    assert "spec.rules[0] also sends traffic to worker-canary" in refusal


async def test_the_role_allows_only_its_own_route(
    cluster: Cluster,
    prom: ScriptedServer,
    make_watcher: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Role names one HTTPRoute: pointed at another, the watcher is refused (403)."""
    watcher = make_watcher(http_route="someone-elses-route")
    load(prom, 30)
    await next_round(watcher)
    assert watcher.write_failures == 1
    assert any("(forbidden)" in r.getMessage() for r in caplog.records)


def test_the_ambient_variant_is_accepted_by_the_api_server(own_kube: LocalKube) -> None:
    """`kubectl apply --server-side -k` of both folders, as a cluster gets them (an API server of
    its own: they go to `default`), and the watcher's account may do exactly what it needs."""
    for path in (AMBIENT, ROUTING):
        done = own_kube.kubectl("apply", "--server-side", "--field-manager=test", "-k", str(path))
        assert "serverside-applied" in done.stdout, done.stdout
    labels = own_kube.kubectl("get", "namespace", "default", "-o", "jsonpath={.metadata.labels}")
    assert '"istio.io/dataplane-mode":"ambient"' in labels.stdout
    weights = own_kube.kubectl(
        "get", "httproute", ROUTE, "-o", "jsonpath={.spec.rules[0].backendRefs[*].weight}"
    )
    assert weights.stdout.split() == ["100", "0"]
    watcher = "--as=system:serviceaccount:default:istiowatcher"

    def can(verb: str, resource: str) -> bool:
        done = own_kube.kubectl("auth", "can-i", watcher, verb, resource, check=False)
        return done.stdout.strip() == "yes"

    assert can("get", f"httproutes/{ROUTE}") and can("patch", f"httproutes/{ROUTE}")
    assert not can("update", f"httproutes/{ROUTE}")
    assert not can("get", "httproutes/another-route")
    assert not can("list", "httproutes")
    assert not can("patch", "virtualservices.networking.istio.io/worker-virtual-service")


def test_acceptance_needs_every_parent_and_the_current_generation() -> None:
    def parent(name: str) -> Obj:
        return {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": name}

    def report(name: str, generation: int, resolved: str = "True") -> Obj:
        return {
            "parentRef": {"name": name},  # defaults filled in: the same parent
            "controllerName": CONTROLLER,
            "conditions": [
                {"type": "Accepted", "status": "True", "observedGeneration": generation},
                {"type": "ResolvedRefs", "status": resolved, "observedGeneration": generation},
            ],
        }

    def route(*parents: Obj) -> Obj:
        return {
            "metadata": {"namespace": "default", "generation": 3},
            "spec": {"parentRefs": [parent("a"), parent("b")]},
            "status": {"parents": list(parents)},
        }

    assert acceptance_of(route(report("a", 3), report("b", 3))).state is AcceptanceState.APPLIED
    one_missing = acceptance_of(route(report("a", 3)))
    assert one_missing.state is AcceptanceState.PENDING
    assert "default/b" in one_missing.detail
    assert acceptance_of(route(report("a", 3), report("b", 2))).state is AcceptanceState.PENDING
    stale_false = route(report("a", 3), report("b", 2, resolved="False"))
    assert acceptance_of(stale_false).state is AcceptanceState.PENDING, "about an older spec"
    refused = acceptance_of(route(report("a", 3), report("b", 3, resolved="False")))
    assert refused.state is AcceptanceState.REFUSED


def test_a_route_no_waypoint_applies_is_refused_in_istios_words() -> None:
    """Istio in ambient mode keeps ResolvedWaypoints True and says only in its message that
    nothing applies the route (the message as tests/istio/test_istiod_route_status.py sees it)."""
    ignored = NO_WAYPOINT

    def route(message: str, observed: int) -> Obj:
        conditions = [
            {"type": kind, "status": "True", "observedGeneration": 2}
            for kind in ("Accepted", "ResolvedRefs")
        ]
        conditions.append(
            {"type": "ResolvedWaypoints", "status": "True", "message": message,
             "observedGeneration": observed}
        )  # fmt: skip
        parent = {"group": "", "kind": "Service", "name": "worker-service", "port": 80}
        return {
            "metadata": {"namespace": "default", "generation": 2},
            "spec": {"parentRefs": [parent]},
            "status": {"parents": [{"parentRef": parent, "controllerName": CONTROLLER,
                                    "conditions": conditions}]},
        }  # fmt: skip

    refused = acceptance_of(route(ignored, 2))
    assert refused.state is AcceptanceState.REFUSED
    assert f"ResolvedWaypoints {ignored}" in refused.detail
    assert acceptance_of(route("All waypoints resolved", 2)).state is AcceptanceState.APPLIED
    assert acceptance_of(route(ignored, 1)).state is AcceptanceState.APPLIED, "an older spec"
