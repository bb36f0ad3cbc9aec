from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.kube import LocalKube
from tests.manifests.clusters import Applied, Clusters
from tests.manifests.manifests import (
    DEPLOYED_TO,
    ISTIO_MANIFESTS,
    K8S,
    OVERLAYS,
    Obj,
    Rendered,
    kustomize,
    load_yaml,
)


@pytest.fixture(scope="session")
def overlays() -> dict[str, Rendered]:
    """k8s/overlays/<name> rendered by `kubectl kustomize`, by overlay name."""
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
    return Rendered("istio-manifests", kustomize(ISTIO_MANIFESTS))


@pytest.fixture(scope="session")
def istio_files() -> dict[str, list[Obj]]:
    """Every YAML file in istio-manifests/ (burst.yaml, natural.yaml too), by file name."""
    return {
        path.name: load_yaml(path)
        for path in sorted(ISTIO_MANIFESTS.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


@pytest.fixture(scope="session")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    """Started once for the modules that apply the manifests, prove the RBAC and run the
    scripts (a start costs 10-15 s); tests add objects but never stop or remove anything."""
    kubes = [LocalKube(tmp_path_factory.mktemp(f"kube-{name}")) for name in OVERLAYS]
    try:
        # One after the other, from this thread: the processes die with the thread that
        # started them (PR_SET_PDEATHSIG), so a worker thread's exit would kill them.
        for kube in kubes:
            kube.start()
        yield Clusters(*kubes)
    finally:
        for kube in kubes:
            kube.stop()


@pytest.fixture(scope="session")
def deployed(clusters: Clusters) -> Applied:
    """Each cluster with what scripts/ deploy on it (the overlay; the routing on primary)."""
    stderr: dict[str, dict[Path, str]] = {}
    # Forced: the scripts' tests may have applied before (client-side, other images).
    apply = ("apply", "--server-side", "--force-conflicts", "--validate=strict", "-k")
    for name, kube in clusters.by_name().items():
        for path in DEPLOYED_TO[name]:
            done = kube.kubectl(*apply, str(path))
            stderr.setdefault(name, {})[path] = done.stderr
    return Applied(clusters, stderr)
