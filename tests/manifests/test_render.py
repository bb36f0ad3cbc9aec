"""The manifests render, and every object is one the API servers would accept.

Kubernetes objects: the Kubernetes 1.31 OpenAPI schemas (kubernetes-validate, strict: unknown
fields are errors, as with kubectl's server-side field validation). Istio objects: Istio 1.30's
CRD schemas for networking.istio.io/v1, made strict the same way (harness/istio_schemas).
What the real API servers say (defaulting, admission, PodSecurity, storage) is in
test_cluster_apply.py; Istio's own validating webhook is not run anywhere.
"""

from __future__ import annotations

import copy
from collections import Counter

import kubernetes_validate
import pytest

from harness.istio_schemas import API_VERSIONS, istio_errors
from tests.manifests.manifests import (
    ISTIO_MANIFESTS,
    SCRIPTS,
    Obj,
    Rendered,
    load_yaml,
    name_of,
)

KUBERNETES_VERSION = "1.31.0"


def kinds_and_names(rendered: Rendered) -> Counter[tuple[str, str]]:
    return Counter((o["kind"], name_of(o)) for o in rendered.objects)


def test_primary_overlay_is_the_whole_app(primary: Rendered) -> None:
    assert kinds_and_names(primary) == Counter(
        {
            ("ServiceAccount", "frontend"): 1,
            ("ServiceAccount", "worker"): 1,
            ("ServiceAccount", "redis-cache"): 1,
            ("ServiceAccount", "istiowatcher"): 1,
            ("Role", "istiowatcher"): 1,
            ("RoleBinding", "istiowatcher"): 1,
            ("Lease", "istiowatcher"): 1,
            ("Service", "frontend-service"): 1,
            ("Service", "worker-service"): 1,
            ("Service", "redis-cache-service"): 1,
            ("Deployment", "frontend-deployment"): 1,
            ("Deployment", "worker-deployment"): 1,
            ("Deployment", "redis-cache"): 1,
            ("Deployment", "istiowatcher-deployment"): 1,
            ("Secret", "redis-auth"): 1,
            ("NetworkPolicy", "redis-cache"): 1,
            ("PodDisruptionBudget", "frontend"): 1,
        }
    )


def test_burst_overlay_is_the_worker_and_the_services_the_mesh_needs(burst: Rendered) -> None:
    # No Redis pods, no frontend, no watcher: only what runs or resolves in the cloud cluster.
    assert kinds_and_names(burst) == Counter(
        {
            ("ServiceAccount", "worker"): 1,
            ("Service", "worker-service"): 1,
            ("Service", "redis-cache-service"): 1,
            ("Deployment", "worker-deployment"): 1,
            ("HorizontalPodAutoscaler", "worker-autoscaler"): 1,
            ("Secret", "redis-auth"): 1,
        }
    )


def test_every_object_lives_in_the_original_namespace(overlays: dict[str, Rendered]) -> None:
    for rendered in overlays.values():
        assert {o["metadata"].get("namespace") for o in rendered.objects} == {"default"}


def test_deployments_are_apps_v1(overlays: dict[str, Rendered]) -> None:
    for rendered in overlays.values():
        assert {d["apiVersion"] for d in rendered.deployments} == {"apps/v1"}


@pytest.mark.parametrize("overlay", ["primary", "burst"])
def test_kubernetes_objects_are_valid_for_kubernetes_1_31(
    overlays: dict[str, Rendered], overlay: str
) -> None:
    for obj in overlays[overlay].objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {obj['kind']} {name_of(obj)}: {exc}")


def test_kubernetes_validation_rejects_an_unknown_field(primary: Rendered) -> None:
    # The validator itself: a misspelt field (as in a hand edit) must fail, not pass silently.
    deployment = copy.deepcopy(primary.get("Deployment", "worker-deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


ISTIO_GROUPS = {"networking.istio.io", "security.istio.io"}


def istio_objects() -> list[tuple[str, Obj]]:
    """Every Istio object the project applies: istio-manifests/*.yaml and scripts/istio/."""
    found = []
    for path in sorted(ISTIO_MANIFESTS.glob("*.yaml")) + sorted(SCRIPTS.glob("istio/*.yaml")):
        for obj in load_yaml(path):
            if obj.get("apiVersion", "").split("/")[0] in ISTIO_GROUPS:
                found.append((str(path.relative_to(path.parents[1])), obj))
    return found


def test_istio_objects_are_v1() -> None:
    objects = istio_objects()
    assert len(objects) >= 10  # gateway, 3 VirtualServices, rule, burst, istiod's, 2 policies
    for where, obj in objects:
        assert obj["apiVersion"] == API_VERSIONS[obj["kind"]], where


@pytest.mark.parametrize(("where", "obj"), istio_objects(), ids=lambda v: str(v)[:40])
def test_istio_objects_are_valid_against_istio_crd_schemas(where: str, obj: Obj) -> None:
    assert istio_errors(obj) == [], f"{where}: {obj['kind']} {name_of(obj)}"


def test_kustomize_renders_istio_manifests_unchanged(
    istio_rendered: Rendered, istio_files: dict[str, list[Obj]]
) -> None:
    # kubectl apply -k istio-manifests: the starting objects, with the worker at natural.yaml.
    expected = [
        obj
        for name in (
            "peer-authentication.yaml",
            "redis-authorization-policy.yaml",
            "frontend-gateway.yaml",
            "frontend-virtual-service.yaml",
            "frontend-destination-rule.yaml",
            "redis-virtual-service.yaml",
            "worker-destination-rule.yaml",
            "natural.yaml",
        )
        for obj in istio_files[name]
    ]
    key = lambda o: (o["kind"], name_of(o))  # noqa: E731
    assert sorted(istio_rendered.objects, key=key) == sorted(expected, key=key)
    for obj in istio_rendered.objects:
        assert istio_errors(obj) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda vs: vs["spec"]["http"][0].update(rout=[]), "rout"),
        (lambda vs: vs["spec"]["http"][0]["route"][0].update(weight="100"), "100"),
        (lambda vs: vs["spec"]["http"][0]["route"][0]["destination"].pop("host"), "host"),
        (lambda vs: vs.update(apiVersion="networking.istio.io/v1alpha3"), "v1"),
    ],
)
def test_istio_validation_rejects_broken_objects(
    istio_files: dict[str, list[Obj]], change: object, complaint: str
) -> None:
    virtual_service = copy.deepcopy(istio_files["natural.yaml"][0])
    assert callable(change)
    change(virtual_service)
    errors = istio_errors(virtual_service)
    assert errors and complaint in " ".join(errors)
