"""The Istio ambient variant: k8s/overlays/ambient (the app, its namespace enrolled in ambient,
the watcher on ACTUATOR=gateway-api) and gateway-api-manifests/ (waypoint, worker Services,
worker-route). Each fact the watcher relies on is checked against what it reads: the env, the
Role against the calls in its code, the route against its actuator. Schema validation of the
Gateway API objects is the real API server's (tests/watcher/test_gateway_api.py applies both
folders with server-side apply); the Kubernetes objects are checked here too."""

from __future__ import annotations

import importlib
from collections import Counter

import kubernetes_validate
import pytest

from istio_burst.core.contracts import SUBSET_BURST, SUBSET_PRIMARY, Weights
from istio_burst.watcher.actuators.gateway_api import find_rule
from istio_burst.watcher.settings import AMBIENT_QUERY, WatcherSettings
from tests.manifests.manifests import (
    K8S,
    REPO,
    Rendered,
    containers,
    kustomize,
    literal_env,
    name_of,
    pod_labels,
    resolved_env,
)
from tests.manifests.test_render import KUBERNETES_VERSION
from tests.manifests.watcher_calls import Use, grants, watcher_uses

GATEWAY_API_ACTUATOR = "istio_burst.watcher.actuators.gateway_api"
GATEWAY_API = "gateway.networking.k8s.io/"  # CRDs: the real API server validates those


@pytest.fixture(scope="module")
def ambient() -> Rendered:
    return Rendered("ambient", kustomize(K8S / "overlays" / "ambient"))


@pytest.fixture(scope="module")
def routing() -> Rendered:
    return Rendered("gateway-api-manifests", kustomize(REPO / "gateway-api-manifests"))


def watcher_env(ambient: Rendered) -> dict[str, str]:
    return literal_env(containers(ambient.get("Deployment", "istiowatcher-deployment"))[0])


def test_ambient_is_the_primary_overlay_plus_its_namespace(
    ambient: Rendered, primary: Rendered
) -> None:
    kinds = Counter((o["kind"], name_of(o)) for o in ambient.objects)
    expected = Counter((o["kind"], name_of(o)) for o in primary.objects)
    expected[("Namespace", "default")] += 1
    assert kinds == expected


def test_the_namespace_is_enrolled_in_ambient_with_its_waypoint(
    ambient: Rendered, routing: Rendered
) -> None:
    labels = ambient.get("Namespace", "default")["metadata"]["labels"]
    assert labels["istio.io/dataplane-mode"] == "ambient"
    (waypoint,) = routing.of_kind("Gateway")
    assert labels["istio.io/use-waypoint"] == name_of(waypoint)
    assert waypoint["spec"]["gatewayClassName"] == "istio-waypoint"
    assert {str(o["metadata"].get("namespace")) for o in routing.objects} == {"default"}


def test_the_role_grants_get_and_patch_on_the_route_and_nothing_else(ambient: Rendered) -> None:
    actuator = importlib.import_module(GATEWAY_API_ACTUATOR)
    assert set(actuator.VERBS) == {"get", "patch"}
    env = watcher_env(ambient)
    route = {Use(actuator.GROUP, actuator.PLURAL, verb) for verb in actuator.VERBS}
    used = watcher_uses(env["ACTUATOR"])
    assert route <= used
    assert {u.group for u in used - route} == {"events.k8s.io", "coordination.k8s.io"}
    (role,) = ambient.of_kind("Role")
    assert sorted(grants(role)) == sorted(used), "the Role grants more or less than the code calls"
    assert role["rules"][0] == {
        "apiGroups": [actuator.GROUP],
        "resources": [actuator.PLURAL],
        "resourceNames": [env["HTTP_ROUTE"]],
        "verbs": list(actuator.VERBS),
    }


def test_the_watcher_reads_the_waypoint_and_writes_the_route(ambient: Rendered) -> None:
    env = watcher_env(ambient)
    assert env["ACTUATOR"] == "gateway-api"
    assert "VIRTUAL_SERVICE" not in env
    assert "QUERY" not in env, "the default for ACTUATOR=gateway-api"
    assert 'reporter="waypoint"' in env["BURST_ERROR_QUERY"]
    watcher = ambient.get("Deployment", "istiowatcher-deployment")
    pod_env = resolved_env(watcher, containers(watcher)[0])
    settings = WatcherSettings.model_validate({k.lower(): v for k, v in pod_env.items()})
    assert settings.actuator == "gateway-api"
    assert settings.query == AMBIENT_QUERY


def test_the_route_starts_natural_on_the_worker_service(
    ambient: Rendered, routing: Rendered
) -> None:
    route = routing.get("HTTPRoute", "worker-route")
    worker_service = ambient.get("Service", "worker-service")
    (parent,) = route["spec"]["parentRefs"]
    assert (parent["group"], parent["kind"], parent["name"]) == ("", "Service", "worker-service")
    assert parent["port"] in {p["port"] for p in worker_service["spec"]["ports"]}
    env = watcher_env(ambient)
    services = {SUBSET_PRIMARY: env["PRIMARY_SERVICE"], SUBSET_BURST: env["BURST_SERVICE"]}
    pair = find_rule(route, services)  # the actuator finds its two backendRefs, nothing else
    assert pair.weights(default=1, maximum=1_000_000) == (Weights(100, 0), True)


def test_each_side_has_a_service_selecting_its_workers(
    primary: Rendered, burst: Rendered, routing: Rendered
) -> None:
    sides = {"worker-primary": primary, "worker-burst": burst}
    for name, overlay in sides.items():
        service = routing.get("Service", name)
        selector = service["spec"]["selector"]
        labels = pod_labels(overlay.get("Deployment", "worker-deployment"))
        assert selector.items() <= labels.items(), f"{name} selects that side's workers"
        other = next(o for n, o in sides.items() if n != name)
        other_labels = pod_labels(other.get("Deployment", "worker-deployment"))
        assert not selector.items() <= other_labels.items(), f"{name}: not the other side's"
        worker_service = overlay.get("Service", "worker-service")
        assert service["spec"]["ports"] == worker_service["spec"]["ports"]


@pytest.mark.parametrize("which", ["ambient", "routing"])
def test_kubernetes_objects_are_valid_for_kubernetes_1_31(
    which: str, request: pytest.FixtureRequest
) -> None:
    rendered: Rendered = request.getfixturevalue(which)
    kubernetes = [o for o in rendered.objects if not o["apiVersion"].startswith(GATEWAY_API)]
    assert kubernetes
    for obj in kubernetes:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{which}: {obj['kind']} {name_of(obj)}: {exc}")
