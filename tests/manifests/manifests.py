"""Reading the project's manifests the way a cluster would get them: rendered by kustomize."""

from __future__ import annotations

import copy
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from harness.kube import kube_bin_dir

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = ("primary", "burst")
ISTIO_MANIFESTS = REPO / "istio-manifests"
SCRIPTS = REPO / "scripts"
# What scripts/lib/mesh.sh (app_deploy) applies to each cluster.
DEPLOYED_TO = {
    "primary": (K8S / "overlays" / "primary", ISTIO_MANIFESTS),
    "burst": (K8S / "overlays" / "burst",),
}
IMAGE_PREFIX = "istio-burst/"
# Image (services/<name>/Dockerfile) -> `istio-burst <command>` it runs.
IMAGE_COMMANDS = {"worker": "worker", "frontend": "frontend", "istiowatcher": "watcher"}

Obj = dict[str, Any]


@cache
def kubectl() -> str:
    """The pinned kubectl (the API servers' version), built with them by scripts/kube/build.sh."""
    return str(kube_bin_dir() / "kubectl")


def kustomize(path: Path) -> list[Obj]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def load_yaml(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@dataclass
class Rendered:
    name: str
    objects: list[Obj]

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    @property
    def deployments(self) -> list[Obj]:
        return self.of_kind("Deployment")

    @property
    def services(self) -> list[Obj]:
        return self.of_kind("Service")


def name_of(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def namespace_of(obj: Obj) -> str:
    return str(obj["metadata"].get("namespace", ""))


def pod_of(deployment: Obj, namespace: str) -> Obj:
    """The Pod its ReplicaSet would create from its template, named as the Deployment (a copy:
    rendered manifests are shared). The local API servers run no controllers to make it."""
    template = copy.deepcopy(deployment["spec"]["template"])
    metadata = {**template["metadata"], "name": name_of(deployment), "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def pod_spec(deployment: Obj) -> Obj:
    spec: Obj = deployment["spec"]["template"]["spec"]
    return spec


def pod_labels(deployment: Obj) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"].get("labels", {})
    return labels


def containers(deployment: Obj) -> list[Obj]:
    found: list[Obj] = pod_spec(deployment)["containers"]
    return found


def literal_env(container: Obj) -> dict[str, str]:
    """The container's env vars with a literal value (valueFrom ones are left out)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


SECRET_STAND_IN = "s3cret-from-the-secret"  # what a secretKeyRef resolves to here


def resolved_env(deployment: Obj, container: Obj) -> dict[str, str]:
    """The container's env as the pod would see it: downward-API fields and Secrets resolved,
    and `$(NAME)` references to earlier variables expanded, as the kubelet does."""
    values: dict[str, str] = {}
    for entry in container.get("env", []):
        source = entry.get("valueFrom", {})
        field = source.get("fieldRef", {}).get("fieldPath")
        if "value" in entry:
            values[entry["name"]] = DEPENDENT_VAR.sub(
                lambda m: values.get(m.group(1), m.group(0)), entry["value"]
            )
        elif field == "metadata.namespace":
            values[entry["name"]] = namespace_of(deployment)
        elif field == "metadata.name":  # the pod's name: the Deployment's, plus a suffix
            values[entry["name"]] = f"{name_of(deployment)}-7d9f8c6b5-x2x4q"
        elif "secretKeyRef" in source:
            values[entry["name"]] = SECRET_STAND_IN
        else:
            raise AssertionError(f"{entry['name']}: {source} is not handled here")
    return values


DEPENDENT_VAR = re.compile(r"\$\((\w+)\)")


def referenced_only(container: Obj) -> set[str]:
    """Variables the container defines only to be used in others' `$(NAME)` (REDIS_PASSWORD)."""
    used = {
        name for e in container.get("env", []) for name in DEPENDENT_VAR.findall(e.get("value", ""))
    }
    return used & set(env_names(container))


def env_names(container: Obj) -> list[str]:
    return [e["name"] for e in container.get("env", [])]


def image_name(container: Obj) -> str:
    """`istio-burst/worker:0.1.0` -> `istio-burst/worker` (registry and tag left out)."""
    image = str(container["image"])
    last = image.rsplit("/", 1)[-1]
    return image[: len(image) - len(last)] + last.split(":", 1)[0].split("@", 1)[0]


def command_of(container: Obj) -> str | None:
    """The `istio-burst` subcommand a container of ours runs; None for others (redis)."""
    name = image_name(container)
    if not name.startswith(IMAGE_PREFIX):
        return None
    return IMAGE_COMMANDS[name.removeprefix(IMAGE_PREFIX)]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_port(container: Obj, ref: int | str) -> Obj | None:
    """The declared container port a probe or Service's targetPort names (by name or number)."""
    for port in container.get("ports", []):
        if ref in (port.get("name"), port["containerPort"]):
            return dict(port)
    return None


def mesh_setting(name: str) -> str:
    """A variable of scripts/lib/mesh.sh as bash sees it (arrays joined by spaces)."""
    done = subprocess.run(
        [
            "bash",
            "-c",
            f"source scripts/lib/common.sh && source scripts/lib/mesh.sh && "
            f'printf "%s" "${{{name}[*]}}"',
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout, f"{name} is not set in scripts/lib/mesh.sh"
    return done.stdout
