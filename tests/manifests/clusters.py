"""The walk-through's two clusters as two real API servers, and what was applied to them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.kube import LocalKube


@dataclass
class Clusters:
    """The walk-through's two clusters, as two real API servers (no nodes, no controllers)."""

    primary: LocalKube
    burst: LocalKube

    def by_name(self) -> dict[str, LocalKube]:
        return {"primary": self.primary, "burst": self.burst}

    def kubeconfig(self, path: Path, contexts: dict[str, str]) -> Path:
        """One admin kubeconfig with a context per cluster, named as a script names it
        (`contexts`: context name -> "primary" or "burst"), as `gcloud container clusters
        get-credentials` or kind would leave it."""
        config: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": []}
        config |= {"users": [], "contexts": [], "current-context": next(iter(contexts))}
        for context, cluster in contexts.items():
            own = yaml.safe_load(self.by_name()[cluster].kubeconfig.read_text())
            config["clusters"].append({"name": context, "cluster": own["clusters"][0]["cluster"]})
            config["users"].append({"name": context, "user": own["users"][0]["user"]})
            config["contexts"].append(
                {"name": context, "context": {"cluster": context, "user": context}}
            )
        path.write_text(yaml.safe_dump(config))
        return path


@dataclass
class Applied:
    """What `kubectl apply --server-side` said, by cluster and then by applied directory."""

    clusters: Clusters
    stderr: dict[str, dict[Path, str]]
