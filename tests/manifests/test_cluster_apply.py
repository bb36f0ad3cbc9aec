"""The manifests meet real API servers: everything scripts/ deploy is applied server-side to the
two clusters (primary: its overlay and istio-manifests/; burst: its overlay) and accepted as
written, and every workload's pod is admitted where PodSecurity enforces `restricted`.

Nothing runs: the API servers have no nodes and no controllers. What is checked is what the API
server itself decides: schemas (core and Istio's CRDs, strict field validation), defaulting,
admission (ServiceAccount, PodSecurity) and storage.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import yaml

from harness.kube import LocalKube
from tests.manifests.clusters import Applied, Clusters
from tests.manifests.manifests import (
    DEPLOYED_TO,
    Obj,
    Rendered,
    kustomize,
    name_of,
    pod_of,
    pod_spec,
)

RESTRICTED = "restricted-pods"  # a namespace where PodSecurity enforces `restricted`
UNENFORCED = "unenforced-pods"  # the same, without the label
SERVICE_ACCOUNT_TOKEN = "kube-api-access-"  # the projected volume ServiceAccount admission adds


def rendered_for(cluster: str) -> list[Obj]:
    return [obj for path in DEPLOYED_TO[cluster] for obj in kustomize(path)]


def differences(sent: Any, stored: Any, where: str = "") -> Iterator[str]:
    """Where the stored object lost or changed what was sent (it may add defaults)."""
    if isinstance(sent, dict) and isinstance(stored, dict):
        for key, value in sent.items():
            if key not in stored:
                yield f"{where}.{key}: dropped"
            else:
                yield from differences(value, stored[key], f"{where}.{key}")
    elif isinstance(sent, list) and isinstance(stored, list) and len(sent) == len(stored):
        for i, (one, other) in enumerate(zip(sent, stored, strict=True)):
            yield from differences(one, other, f"{where}[{i}]")
    elif sent != stored:
        yield f"{where}: sent {sent!r}, stored {stored!r}"


def as_stored(obj: Obj) -> Obj:
    """What the API defines a sent object to become: a Secret's write-only stringData is kept
    as base64 in data."""
    if obj["kind"] != "Secret" or "stringData" not in obj:
        return obj
    kept = {k: v for k, v in obj.items() if k != "stringData"}
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in obj["stringData"].items()}
    kept["data"] = {**obj.get("data", {}), **encoded}
    return kept


def stored(kube: LocalKube, objects: list[Obj]) -> list[Obj]:
    """The objects as the API server keeps them, in the same order."""
    manifest = yaml.safe_dump_all(objects)
    done = kube.kubectl("get", "-f", "-", "-o", "json", input=manifest)
    found: list[Obj] = orjson.loads(done.stdout)["items"]
    return found


def test_both_clusters_accept_every_object_as_written(deployed: Applied) -> None:
    problems: list[str] = []
    for name, kube in deployed.clusters.by_name().items():
        for path, stderr in deployed.stderr[name].items():
            assert stderr == "", f"{name}: applying {path.name} warned:\n{stderr}"
        sent = rendered_for(name)
        kept = stored(kube, sent)
        assert [(o["kind"], name_of(o)) for o in kept] == [(o["kind"], name_of(o)) for o in sent]
        for one, other in zip(sent, kept, strict=True):
            changed = list(differences(as_stored(one), other))
            problems += [f"{name}: {one['kind']} {name_of(one)}: {c}" for c in changed]
    assert not problems, "\n".join(problems)


def content(obj: Obj) -> Obj:
    """An object without its bookkeeping (who applied which field, its version)."""
    metadata = {
        k: v for k, v in obj["metadata"].items() if k not in ("managedFields", "resourceVersion")
    }
    return {**obj, "metadata": metadata}


def test_applying_again_changes_nothing(deployed: Applied) -> None:
    # scripts/gke.sh deploy may run any number of times: no field may flip between what the
    # manifests say and what the server defaults.
    for name, kube in deployed.clusters.by_name().items():
        before = [content(o) for o in stored(kube, rendered_for(name))]
        for path in DEPLOYED_TO[name]:
            kube.kubectl("apply", "--server-side", "--validate=strict", "-k", str(path))
        after = [content(o) for o in stored(kube, rendered_for(name))]
        assert after == before, name


def test_both_virtual_service_variants_are_accepted(
    deployed: Applied, istio_files: dict[str, list[Obj]]
) -> None:
    # natural.yaml and burst.yaml (the original's manual switch) replace worker-virtual-service.
    for file in ("natural.yaml", "burst.yaml"):
        (virtual_service,) = istio_files[file]
        done = deployed.clusters.primary.kubectl(
            "apply", "--server-side", "--dry-run=server", "--validate=strict", "-f", "-",
            input=yaml.safe_dump(virtual_service),
        )  # fmt: skip
        assert done.stderr == "", f"{file}: {done.stderr}"


# --- Pods under PodSecurity `restricted` ---------------------------------------------------------


def namespace(name: str, labels: dict[str, str]) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    )


@pytest.fixture(scope="module")
def pod_namespaces(clusters: Clusters, overlays: dict[str, Rendered]) -> Clusters:
    """On each cluster, RESTRICTED and UNENFORCED, each with the overlay's ServiceAccounts (the
    ServiceAccount admission plugin refuses a pod whose account does not exist)."""
    restricted = {"pod-security.kubernetes.io/enforce": "restricted"}
    for name, kube in clusters.by_name().items():
        for ns, labels in ((RESTRICTED, restricted), (UNENFORCED, {})):
            kube.kubectl("apply", "--server-side", "-f", "-", input=namespace(ns, labels))
            for account in overlays[name].of_kind("ServiceAccount"):
                moved = copy.deepcopy(account)
                moved["metadata"]["namespace"] = ns
                kube.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(moved))
    return clusters


def create_dry_run(kube: LocalKube, pod: Obj) -> tuple[Obj | None, str]:
    """(the pod as admitted, or None; what the server said on refusal)."""
    done = kube.kubectl(
        "create", "--dry-run=server", "-o", "json", "-f", "-",
        input=yaml.safe_dump(pod), check=False,
    )  # fmt: skip
    return (orjson.loads(done.stdout) if done.returncode == 0 else None), done.stderr


def test_every_workload_pod_is_admitted_under_restricted(
    pod_namespaces: Clusters, overlays: dict[str, Rendered]
) -> None:
    for name, kube in pod_namespaces.by_name().items():
        for deployment in overlays[name].deployments:
            admitted, refusal = create_dry_run(kube, pod_of(deployment, RESTRICTED))
            assert admitted is not None, f"{name}: {name_of(deployment)} refused:\n{refusal}"
            # ServiceAccount admission mounts an API token only where the pod asks for one.
            volumes = [v["name"] for v in admitted["spec"].get("volumes", [])]
            has_token = any(v.startswith(SERVICE_ACCOUNT_TOKEN) for v in volumes)
            wants_token = pod_spec(deployment).get("automountServiceAccountToken", True)
            assert has_token is wants_token, f"{name}: {name_of(deployment)}: {volumes}"


def test_restricted_is_enforced_an_escalating_pod_is_refused(
    pod_namespaces: Clusters, primary: Rendered
) -> None:
    pod = pod_of(primary.get("Deployment", "worker-deployment"), RESTRICTED)
    pod["spec"]["hostNetwork"] = True
    pod["spec"]["containers"][0]["securityContext"].update(
        privileged=True,
        allowPrivilegeEscalation=True,
        capabilities={"add": ["NET_ADMIN"], "drop": ["ALL"]},
    )
    admitted, refusal = create_dry_run(pod_namespaces.primary, pod)
    assert admitted is None
    assert 'violates PodSecurity "restricted:latest": ' in refusal, refusal
    for broken in ("privileged", "host namespaces", "allowPrivilegeEscalation", "NET_ADMIN"):
        assert broken in refusal, refusal
    # The same pod where nothing is enforced: the refusal above was PodSecurity's.
    pod["metadata"]["namespace"] = UNENFORCED
    admitted, refusal = create_dry_run(pod_namespaces.primary, pod)
    assert admitted is not None, refusal
