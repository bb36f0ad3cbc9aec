"""A namespace of its own on the real API server, holding the project's worker HTTPRoute and
Services (gateway-api-manifests/), the route's parent Service and the watcher's account as the
ambient overlay renders them; and a stand-in for Istio's gateway controller, writing the route's
status as istiod in ambient mode does (tests/istio/test_istiod_route_status.py pins it to the
real istiod)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from harness.kube import LocalKube

REPO = Path(__file__).resolve().parents[2]
ROUTING = REPO / "gateway-api-manifests"
AMBIENT = REPO / "k8s" / "overlays" / "ambient"
ROUTE = "worker-route"
CONTROLLER = "istio.io/gateway-controller"
WATCHER_ACCOUNT = ("ServiceAccount", "Role", "RoleBinding")
PARENT = ("Service", "worker-service")  # the route's parentRef (k8s/base/worker)
USE_WAYPOINT = "istio.io/use-waypoint"
HTTP_ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes"
# ResolvedWaypoints' message when neither the parent Service nor its namespace names a waypoint
NO_WAYPOINT = (
    "istio.io/use-waypoint label missing from parent and parent namespace; "
    "in ambient mode, route will not be respected"
)

Obj = dict[str, Any]


def rendered(kube: LocalKube, path: Path) -> list[Obj]:
    out = kube.kubectl("kustomize", str(path)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


class Cluster:
    """The test's namespace on the real API server, read and written as the admin."""

    def __init__(self, kube: LocalKube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.http = kube.admin_client()
        self.path = f"{HTTP_ROUTES.format(namespace=namespace)}/{ROUTE}"

    def apply(self, objects: list[Obj]) -> None:
        for obj in objects:
            if obj["kind"] != "Namespace":
                obj["metadata"]["namespace"] = self.namespace
            for subject in obj.get("subjects", []):  # a RoleBinding's ServiceAccount
                subject["namespace"] = self.namespace
        self.kube.kubectl(
            "apply", "--server-side", "--field-manager=test", "-f", "-",
            input=yaml.safe_dump_all(objects),
        )  # fmt: skip

    def route(self) -> Obj:
        answer = self.http.get(self.path)
        answer.raise_for_status()
        route: Obj = answer.json()
        return route

    def weights(self) -> tuple[int, int]:
        refs = self.route()["spec"]["rules"][0]["backendRefs"]
        return refs[0]["weight"], refs[1]["weight"]

    def edit_weights(self, primary: int, burst: int) -> None:
        """An admin's edit, as `kubectl patch --type=json` sends it."""
        ops = [
            {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": primary},
            {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": burst},
        ]
        answer = self.http.patch(
            self.path, json=ops, headers={"Content-Type": "application/json-patch+json"}
        )
        answer.raise_for_status()

    def service(self, name: str) -> Obj | None:
        """The Service, or None if there is none of that name."""
        answer = self.http.get(f"/api/v1/namespaces/{self.namespace}/services/{name}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        found: Obj = answer.json()
        return found

    def namespace_object(self) -> Obj:
        answer = self.http.get(f"/api/v1/namespaces/{self.namespace}")
        answer.raise_for_status()
        found: Obj = answer.json()
        return found

    def delete_service(self, name: str) -> None:
        self.kube.kubectl("delete", "service", name, "-n", self.namespace)

    def close(self) -> None:
        self.http.close()


def uses_waypoint(obj: Obj) -> bool:
    """Whether a Service or Namespace names a waypoint (label istio.io/use-waypoint, not none)."""
    value = str(obj["metadata"].get("labels", {}).get(USE_WAYPOINT, ""))
    return value != "" and value.lower() != "none"


class PlayedController:
    """Istio's gateway controller in ambient mode (istiod with PILOT_ENABLE_AMBIENT=true), as far
    as the route's status goes: what it writes for the route's current generation, judged from
    what is in the namespace as istiod judges it. Pinned to the real istiod's status by
    tests/istio/test_istiod_route_status.py; it plays only the parents this route has (one
    Service in the route's namespace)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def status(self) -> Obj:
        """The `status.parents[]` entry istiod would write now, lastTransitionTime aside."""
        route = self.cluster.route()
        generation = int(route["metadata"]["generation"])

        def condition(kind: str, status: str, why: str, message: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": why,
                "message": message,
                "observedGeneration": generation,
            }

        [parent_ref] = route["spec"]["parentRefs"]
        accepted = condition("Accepted", "True", "Accepted", "Route was valid")
        waypoints = condition(
            "ResolvedWaypoints", "True", "ResolvedWaypoints", "All waypoints resolved"
        )
        # ResolvedWaypoints stays True whatever it finds: istiod changes only its message.
        parent = self.cluster.service(parent_ref["name"])
        if parent is None:
            message = f'parent service: "{parent_ref["name"]}" not found'
            accepted = condition("Accepted", "False", "NoMatchingParent", message)
            waypoints["message"] = "parent not found"
        elif not (uses_waypoint(parent) or uses_waypoint(self.cluster.namespace_object())):
            waypoints["message"] = NO_WAYPOINT
        resolved = condition("ResolvedRefs", "True", "ResolvedRefs", "All references resolved")
        # istiod drops a backendRef of weight 0 before it looks the Service up: a missing
        # Service is reported only while it is meant to get traffic. The last one missing wins.
        for rule in route["spec"]["rules"]:
            for ref in rule["backendRefs"]:
                if ref.get("weight", 1) != 0 and self.cluster.service(ref["name"]) is None:
                    host = f"{ref['name']}.{self.cluster.namespace}.svc.cluster.local"
                    message = f"backend({host}) not found"
                    resolved = condition("ResolvedRefs", "False", "BackendNotFound", message)
        return {
            "parentRef": parent_ref,
            "controllerName": CONTROLLER,
            "conditions": [accepted, resolved, waypoints],
        }

    def report(self) -> int:
        """Write `status()` through the status subresource; the generation it is about."""
        parent = self.status()
        for condition in parent["conditions"]:
            condition["lastTransitionTime"] = "2026-12-06T00:00:00Z"
        answer = self.cluster.http.patch(
            self.cluster.path + "/status",
            json={"status": {"parents": [parent]}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        answer.raise_for_status()
        return int(parent["conditions"][0]["observedGeneration"])


@contextmanager
def gateway_api_namespace(kube: LocalKube) -> Iterator[Cluster]:
    """A fresh namespace labelled as the ambient overlay labels the app's, with the route at
    100/0 (no status yet), its parent Service worker-service and the watcher's account as the
    ambient overlay renders them; deleted after."""
    namespace = f"gw-{uuid.uuid4().hex[:8]}"
    ambient = rendered(kube, AMBIENT)
    [labelled] = [o for o in ambient if o["kind"] == "Namespace"]
    made = Cluster(kube, namespace)
    try:
        made.apply([{**labelled, "metadata": {**labelled["metadata"], "name": namespace}}])
        routing = rendered(kube, ROUTING)
        account = [o for o in ambient if o["kind"] in WATCHER_ACCOUNT]
        assert {o["kind"] for o in account} == set(WATCHER_ACCOUNT)
        parent = [o for o in ambient if (o["kind"], o["metadata"]["name"]) == PARENT]
        made.apply([o for o in routing if o["kind"] != "Gateway"] + parent + account)
        yield made
    finally:
        made.close()
        kube.delete_namespace(namespace, HTTP_ROUTES.format(namespace=namespace))
