"""Local workers registered with istiod as the workers of each cluster."""

from __future__ import annotations

from typing import Any

from istio_burst.core.contracts import SUBSET_BURST, SUBSET_PRIMARY

# The label each cluster's overlay puts on its worker pods, which the DestinationRule's subsets
# select (k8s/overlays/*/worker-cluster.yaml, istio-manifests/worker-destination-rule.yaml).
CLUSTER_TYPE = {SUBSET_PRIMARY: "primary-cluster", SUBSET_BURST: "burst-cluster"}


def worker_entries(ports: dict[str, int], address: str = "127.0.0.1") -> list[dict[str, Any]]:
    """One WorkloadEntry per subset: worker-service (selector app: worker) selects them as it
    would the pods, and their `http` port is the Service's named targetPort."""
    return [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "WorkloadEntry",
            "metadata": {"name": f"worker-{subset}-local", "namespace": "default"},
            "spec": {
                "address": address,
                "ports": {"http": port},
                "labels": {"app": "worker", "cluster-type": CLUSTER_TYPE[subset]},
                "serviceAccount": "worker",
            },
        }
        for subset, port in ports.items()
    ]
