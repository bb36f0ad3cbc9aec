from __future__ import annotations

import pytest

from tests.manifests.manifests import (
    ISTIO_MANIFESTS,
    K8S,
    OVERLAYS,
    Obj,
    Rendered,
    kubectl_or_none,
    kustomize,
    load_yaml,
)


def _need_kubectl() -> None:
    if kubectl_or_none() is None:
        pytest.skip("kubectl is not installed: it renders the kustomize overlays (./run setup)")


@pytest.fixture(scope="session")
def overlays() -> dict[str, Rendered]:
    """k8s/overlays/<name> rendered by `kubectl kustomize`, by overlay name."""
    _need_kubectl()
    return {name: Rendered(name, kustomize(K8S / "overlays" / name)) for name in OVERLAYS}


@pytest.fixture(scope="session")
def primary(overlays: dict[str, Rendered]) -> Rendered:
    return overlays["primary"]


@pytest.fixture(scope="session")
def burst(overlays: dict[str, Rendered]) -> Rendered:
    return overlays["burst"]


@pytest.fixture(scope="session")
def istio_rendered() -> Rendered:
    """istio-manifests/ as `kubectl apply -k istio-manifests` sends it."""
    _need_kubectl()
    return Rendered("istio-manifests", kustomize(ISTIO_MANIFESTS))


@pytest.fixture(scope="session")
def istio_files() -> dict[str, list[Obj]]:
    """Every YAML file in istio-manifests/ (burst.yaml, natural.yaml too), by file name."""
    return {
        path.name: load_yaml(path)
        for path in sorted(ISTIO_MANIFESTS.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }
