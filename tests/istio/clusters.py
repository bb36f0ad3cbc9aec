"""What the project puts on each cluster, rendered as `kubectl apply` would get it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from harness.kube import LocalKube
from tests.manifests.manifests import (
    ISTIO_MANIFESTS,
    K8S,
    SCRIPTS,
    Obj,
    kustomize,
    load_yaml,
    namespace_of,
    pod_of,
)


def objects_on(cluster: str) -> list[Obj]:
    """The primary cluster gets its overlay, the mesh's routing and istiod's exposure to the
    remote cluster; the burst cluster gets only its overlay (its istiod is the primary's)."""
    objects = kustomize(K8S / "overlays" / cluster)
    if cluster == "primary":
        objects += kustomize(ISTIO_MANIFESTS)
        objects += [
            {**obj, "metadata": {**obj["metadata"], "namespace": "istio-system"}}
            for obj in load_yaml(SCRIPTS / "istio" / "expose-istiod.yaml")
        ]  # applied with -n istio-system
    return objects


def pods_of(objects: list[Obj]) -> list[Obj]:
    """One Pod per Deployment: they never run, but analyzers match them by label."""
    return [
        pod_of(obj, namespace_of(obj) or "default")
        for obj in objects
        if obj["kind"] == "Deployment"
    ]


@contextlib.contextmanager
def applied(kube: LocalKube, objects: list[Obj]) -> Iterator[None]:
    """`objects` created or updated through the API (and so through istiod's webhook, when it
    is registered); deleted afterwards."""
    manifest = "\n---\n".join(json.dumps(obj) for obj in objects)
    kube.kubectl("create", "namespace", "istio-system", check=False)
    kube.kubectl("apply", "-f", "-", input=manifest)
    try:
        yield
    finally:
        kube.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=manifest)
