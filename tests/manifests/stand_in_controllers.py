"""What a cluster's controllers would do, played on the real API servers while a script runs, so
that its `kubectl rollout status` and `kubectl exec` find what they look for.

Each Deployment gets one Pod from its template (as its ReplicaSet would make) and a status that
says its replicas are up to date and available (as the deployment controller would write once
the kubelets report them ready). No node exists: the Pods are never scheduled or run, so
`kubectl exec` reaches the API server and stops there.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import ExitStack
from typing import Any

import httpx

from harness.kube import LocalKube
from tests.manifests.manifests import pod_of

MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


class StandInControllers:
    def __init__(self, kubes: list[LocalKube], namespace: str) -> None:
        self.kubes = kubes
        self.namespace = namespace

    def run_until_exit(self, process: subprocess.Popen[bytes], timeout: float) -> int:
        """Act on every new Deployment until `process` ends; its exit status. However this ends
        (a timeout, a failed API call), `process` has ended with it."""
        deadline = time.monotonic() + timeout
        try:
            with ExitStack() as stack:
                apis = [stack.enter_context(kube.admin_client()) for kube in self.kubes]
                while True:
                    for api in apis:
                        self._roll_out(api)
                    try:
                        return process.wait(timeout=0.5)
                    except subprocess.TimeoutExpired:
                        if time.monotonic() > deadline:
                            raise
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    def _roll_out(self, api: httpx.Client) -> None:
        path = f"/apis/apps/v1/namespaces/{self.namespace}/deployments"
        answer = api.get(path)
        answer.raise_for_status()
        for deployment in answer.json()["items"]:
            generation = deployment["metadata"]["generation"]
            if deployment.get("status", {}).get("observedGeneration") == generation:
                continue
            pod = pod_of(deployment, self.namespace)
            made = api.post(f"/api/v1/namespaces/{self.namespace}/pods", json=pod)
            if made.status_code != 409:  # already made for an earlier generation
                made.raise_for_status()
            replicas = deployment["spec"].get("replicas", 1)
            status: dict[str, Any] = {"observedGeneration": generation, "replicas": replicas}
            status |= {f"{kind}Replicas": replicas for kind in ("updated", "ready", "available")}
            name = deployment["metadata"]["name"]
            done = api.patch(f"{path}/{name}/status", json={"status": status}, headers=MERGE_PATCH)
            done.raise_for_status()
