"""A namespace of its own on the real API server, holding the project's worker HTTPRoute and
Services (gateway-api-manifests/) and the watcher's account as the ambient overlay renders it;
and a stand-in for the gateway controller, writing the route's status as Istio's would."""

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
        self.path = f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{ROUTE}"

    def apply(self, objects: list[Obj]) -> None:
        for obj in objects:
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

    def close(self) -> None:
        self.http.close()


class PlayedController:
    """What Istio's gateway controller writes in the route's status (status subresource)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def report(self, *, resolved: str = "True", reason: str = "ResolvedRefs") -> int:
        """Accepted=True and ResolvedRefs=`resolved` for the route's current generation."""
        generation = int(self.cluster.route()["metadata"]["generation"])

        def condition(kind: str, status: str, why: str, message: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": why,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": "2026-12-06T00:00:00Z",
            }

        parent = {
            "parentRef": {"group": "", "kind": "Service", "name": "worker-service", "port": 80},
            "controllerName": CONTROLLER,
            "conditions": [
                condition("Accepted", "True", "Accepted", "Route was valid"),
                condition(
                    "ResolvedRefs",
                    resolved,
                    reason,
                    "All references resolved"
                    if resolved == "True"
                    else "backend(worker-burst) not found",
                ),
            ],
        }
        answer = self.cluster.http.patch(
            self.cluster.path + "/status",
            json={"status": {"parents": [parent]}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        answer.raise_for_status()
        return generation


@contextmanager
def gateway_api_namespace(kube: LocalKube) -> Iterator[Cluster]:
    """A fresh namespace with the route at 100/0 (no status yet), deleted after."""
    namespace = f"gw-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", namespace)
    made = Cluster(kube, namespace)
    try:
        routing = rendered(kube, ROUTING)
        account = [o for o in rendered(kube, AMBIENT) if o["kind"] in WATCHER_ACCOUNT]
        assert {o["kind"] for o in account} == set(WATCHER_ACCOUNT)
        made.apply([o for o in routing if o["kind"] != "Gateway"] + account)
        yield made
    finally:
        made.close()
        kube.kubectl("delete", "namespace", namespace, "--wait=false")
