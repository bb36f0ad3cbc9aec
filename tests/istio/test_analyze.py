"""`istioctl analyze` (Istio's own analyzers) on what the project puts on each cluster, offline
and against the local API server. Every message it gives is fixed or explained in EXPLAINED."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.kube import LocalKube
from tests.istio.clusters import applied, objects_on, pods_of

# What the local API server lacks and a real cluster has: (code, origin as istioctl names it,
# fnmatch pattern, text the message contains) -> why it does not apply to the manifests.
# Offline analysis sees only the manifests and needs none of these.
NO_INJECTOR = (
    "it has no sidecar injector (istiod's injection webhook and templates are not installed): "
    "on a cluster the namespace label injects every pod; injection itself is unverified here"
)
EXPLAINED: dict[str, dict[tuple[str, str, str], str]] = {
    "primary": {
        ("IST0103", "Pod default/*", "missing the Istio proxy"): NO_INJECTOR,
        ("IST0101", "Gateway default/frontend-gateway", '"istio=ingressgateway"'): (
            "the pods of istio=ingressgateway are Istio's ingress gateway, which istioctl "
            "install adds (scripts/lib/mesh.sh), not these manifests"
        ),
        ("IST0101", "Gateway istio-system/istiod-gateway", '"istio=eastwestgateway"'): (
            "the pods of istio=eastwestgateway come from `istioctl install -f "
            "scripts/istio/eastwest-gateway.yaml` (scripts/lib/mesh.sh), not from manifests"
        ),
        ("IST0101", "VirtualService istio-system/istiod-vs", "istiod.istio-system.svc"): (
            "the istiod Service is Istio's own, added by istioctl install"
        ),
        ("IST0173", "DestinationRule default/worker-destination-rule", "Subset burst "): (
            "the burst subset's pods run in the burst cluster: analysis of one cluster does not "
            "see them (the primary subset's are checked here, the burst cluster's labels by "
            "tests/manifests)"
        ),
    },
    "burst": {("IST0103", "Pod default/*", "missing the Istio proxy"): NO_INJECTOR},
}


def unexplained(cluster: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        m
        for m in messages
        if not any(
            m["code"] == code and fnmatch(str(m.get("origin")), origin) and text in m["message"]
            for code, origin, text in EXPLAINED[cluster]
        )
    ]


CLUSTERS = ("primary", "burst")


def analyze(istioctl: Path, *args: str) -> list[dict[str, Any]]:
    """The messages istioctl analyze gives, at every level (Info too)."""
    done = subprocess.run(
        [str(istioctl), "analyze", "--output=json", "--output-threshold=Info", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        messages: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    except json.JSONDecodeError as bad:
        raise AssertionError(
            f"istioctl analyze gave no JSON:\n{done.stdout}\n{done.stderr}"
        ) from bad
    return messages


def shown(messages: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{m['level']} [{m['code']}] ({m.get('origin')}) {m['message']}" for m in messages
    )


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_offline_analysis_finds_nothing(cluster: str, istio_bin: Path, tmp_path: Path) -> None:
    manifest = tmp_path / f"{cluster}.yaml"
    manifest.write_text(yaml.safe_dump_all(objects_on(cluster)))
    messages = analyze(
        istio_bin / "istioctl", "--use-kube=false", "--all-namespaces", str(manifest)
    )
    assert not messages, shown(messages)


@pytest.fixture
def cluster_applied(request: pytest.FixtureRequest, mesh_kube: LocalKube) -> Iterator[str]:
    """The cluster's objects and their pods, its namespace labelled as scripts/lib/mesh.sh does."""
    cluster = request.param
    objects = objects_on(cluster)
    mesh_kube.kubectl("label", "namespace", "default", "istio-injection=enabled", "--overwrite")
    with applied(mesh_kube, objects + pods_of(objects)):
        yield cluster
    mesh_kube.kubectl("label", "namespace", "default", "istio-injection-")


@pytest.mark.parametrize("cluster_applied", CLUSTERS, indirect=True)
def test_analysis_of_the_applied_cluster_finds_nothing(
    cluster_applied: str, mesh_kube: LocalKube, istio_bin: Path
) -> None:
    messages = analyze(
        istio_bin / "istioctl",
        f"--kubeconfig={mesh_kube.kubeconfig}",
        "--all-namespaces",
    )
    assert not unexplained(cluster_applied, messages), shown(messages)
