"""What the project puts on each cluster, rendered as `kubectl apply` would get it."""

from __future__ import annotations

from tests.manifests.manifests import ISTIO_MANIFESTS, K8S, SCRIPTS, Obj, kustomize, load_yaml


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
    """One Pod per Deployment, from its template: what its ReplicaSet would create (the local
    API server runs no controllers). They never run, but analyzers match them by label."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{obj['metadata']['name']}-local",
                "namespace": obj["metadata"].get("namespace", "default"),
                "labels": obj["spec"]["template"]["metadata"]["labels"],
            },
            "spec": obj["spec"]["template"]["spec"],
        }
        for obj in objects
        if obj["kind"] == "Deployment"
    ]
