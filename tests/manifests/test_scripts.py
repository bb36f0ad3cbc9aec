"""scripts/: shellcheck-clean, self-describing, and in --dry-run they print the whole walk-through
while running none of it: gcloud, kubectl, istioctl, docker and kind are replaced on PATH by
stand-ins that record any call and fail. Their Kubernetes steps also run for real, with the
pinned kubectl, against two local API servers (the end of this file says what cannot)."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import yaml

from harness.kube import LocalKube
from harness.processes import require_binary
from tests.manifests.clusters import Applied, Clusters
from tests.manifests.manifests import (
    K8S,
    REPO,
    SCRIPTS,
    Obj,
    kubectl,
    kustomize,
    load_yaml,
    mesh_setting,
)
from tests.manifests.stand_in_controllers import StandInControllers

TOOLS = ("gcloud", "kubectl", "istioctl", "docker", "kind", "helm", "curl")
SCRIPT_NAMES = ("gke.sh", "kind-e2e.sh")


def all_scripts() -> list[Path]:
    return sorted(SCRIPTS.glob("*.sh")) + sorted(SCRIPTS.glob("lib/*.sh"))


def tools_env(
    tmp_path: Path, stand_ins: dict[str, str], kubeconfig: Path | None = None
) -> tuple[dict[str, str], Path]:
    """An environment whose PATH finds recording stand-ins (tool -> what it does after
    recording its call) and, with `kubeconfig`, the real kubectl (pinned) talking to it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    for tool, then in stand_ins.items():
        path = bin_dir / tool
        path.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\n{then}\n')
        path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PROJECT", "TAG", "ZONE")}
    env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    if kubeconfig is not None:
        env["PATH"] = f"{Path(kubectl()).parent}:{env['PATH']}"
        env["KUBECONFIG"] = str(kubeconfig)
    return env, calls


@pytest.fixture
def stand_ins(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose PATH finds failing, recording stand-ins for the cluster tools."""
    return tools_env(tmp_path, dict.fromkeys(TOOLS, "exit 97"))


def run_script(
    name: str, args: Sequence[str], env: dict[str, str], cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def commands(stdout: str) -> list[str]:
    """The commands a run printed ("+ " lines), without the prefix."""
    return [line[2:] for line in stdout.splitlines() if line.startswith("+ ")]


def one_matching(printed: list[str], pattern: str) -> str:
    found = [c for c in printed if re.search(pattern, c)]
    assert len(found) == 1, f"{pattern!r} matched {len(found)} commands:\n" + "\n".join(printed)
    return found[0]


def test_scripts_are_shellcheck_clean() -> None:
    shellcheck = require_binary("shellcheck")
    done = subprocess.run(
        [shellcheck, "-x", *map(str, all_scripts())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_scripts_are_strict_bash() -> None:
    for name in SCRIPT_NAMES:
        text = (SCRIPTS / name).read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), name
        assert "\nset -euo pipefail\n" in text, name
        assert os.access(SCRIPTS / name, os.X_OK), name


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_help_explains_and_runs_nothing(name: str, stand_ins: tuple[dict[str, str], Path]) -> None:
    env, calls = stand_ins
    done = run_script(name, ["--help"], env)
    assert done.returncode == 0, done.stderr
    assert "--dry-run" in done.stdout
    assert done.stdout.startswith("Usage: scripts/")
    assert not calls.exists()


def test_gke_refuses_an_unknown_step(stand_ins: tuple[dict[str, str], Path]) -> None:
    env, calls = stand_ins
    done = run_script("gke.sh", ["--dry-run", "--project", "p", "clusters", "explode"], env)
    assert done.returncode != 0
    assert "unknown step 'explode'" in done.stderr
    assert done.stdout == ""  # nothing printed as if it would run before the refusal
    assert not calls.exists()


@pytest.fixture
def gke_up(stand_ins: tuple[dict[str, str], Path]) -> list[str]:
    env, calls = stand_ins
    done = run_script(
        "gke.sh",
        ["--dry-run", "--project", "demo-project", "--zone", "europe-west1-b", "--tag", "v7", "up"],
        env,
    )
    assert done.returncode == 0, done.stderr
    assert not calls.exists(), f"a dry run ran: {calls.read_text()}"
    return commands(done.stdout)


def test_gke_dry_run_creates_the_two_clusters(gke_up: list[str]) -> None:
    primary = one_matching(gke_up, r"^gcloud container clusters create primary ")
    assert "--num-nodes 4" in primary
    assert "--project demo-project --zone europe-west1-b" in primary
    assert "autoscaling" not in primary
    burst = one_matching(gke_up, r"^gcloud container clusters create burst ")
    assert "--num-nodes 1 --enable-autoscaling --min-nodes 1 --max-nodes 5" in burst
    for cluster in ("primary", "burst"):
        one_matching(gke_up, rf"^gcloud container clusters get-credentials {cluster} ")


def test_gke_dry_run_opens_the_firewall_between_the_clusters_pods(gke_up: list[str]) -> None:
    rule = one_matching(gke_up, r"^gcloud compute firewall-rules create ")
    assert "--source-ranges '<primary-pod-range>,<burst-pod-range>'" in rule
    assert "--target-tags '<node-tags>'" in rule
    one_matching(gke_up, r"^primary_pods=\$\(gcloud container clusters describe primary ")


def test_gke_dry_run_builds_and_pushes_three_images(gke_up: list[str]) -> None:
    registry = "europe-west1-docker.pkg.dev/demo-project/istio-burst"
    for name in mesh_setting("SERVICE_IMAGES").split():
        build = one_matching(gke_up, rf"^docker build .* -f services/{name}/Dockerfile ")
        assert build.endswith(f"-t {registry}/{name}:v7 .")
        one_matching(gke_up, rf"^docker push {re.escape(registry)}/{name}:v7$")


def test_gke_dry_run_installs_istio_primary_remote(gke_up: list[str]) -> None:
    primary_ctx = "gke_demo-project_europe-west1-b_primary"
    burst_ctx = "gke_demo-project_europe-west1-b_burst"
    mesh = "--set values.global.meshID=mesh1 --set values.global.multiCluster.clusterName={} --set values.global.network=network1"  # noqa: E501
    installs = [c for c in gke_up if c.startswith("istioctl install ")]
    assert len(installs) == 3  # istiod, east-west gateway, remote
    istiod, eastwest, remote = installs
    assert f"--context {primary_ctx}" in istiod
    assert mesh.format("primary") in istiod
    assert "values.global.externalIstiod=true" in istiod
    assert "-f scripts/istio/eastwest-gateway.yaml" in eastwest
    assert mesh.format("primary") in eastwest
    assert f"--context {burst_ctx} --set profile=remote" in remote
    assert mesh.format("burst") in remote
    assert "values.istiodRemote.injectionPath=/inject/cluster/burst/net/network1" in remote
    assert "values.global.remotePilotAddress=<east-west-gateway-ip>" in remote
    one_matching(gke_up, r"apply -n istio-system -f scripts/istio/expose-istiod.yaml$")
    one_matching(
        gke_up,
        rf"^kubectl --context {burst_ctx} annotate namespace istio-system "
        r"topology.istio.io/controlPlaneClusters=primary ",
    )
    secret = one_matching(gke_up, r"^istioctl create-remote-secret ")
    assert secret == (
        f"istioctl create-remote-secret --context {burst_ctx} --name burst"
        f" | kubectl apply -f - --context {primary_ctx}"
    )
    # In that order: the remote's istiod address exists before the remote is installed.
    assert gke_up.index(eastwest) < gke_up.index(remote) < gke_up.index(secret)


def test_gke_dry_run_applies_the_overlays_and_the_routing(gke_up: list[str]) -> None:
    primary_ctx = "gke_demo-project_europe-west1-b_primary"
    burst_ctx = "gke_demo-project_europe-west1-b_burst"
    for ctx in (primary_ctx, burst_ctx):
        one_matching(gke_up, rf"^kubectl --context {ctx} label namespace default istio-injection")
    apply_primary = one_matching(
        gke_up, rf"^kubectl --context {primary_ctx} apply -k k8s/deploy/primary$"
    )
    apply_burst = one_matching(
        gke_up, rf"^kubectl --context {burst_ctx} apply -k k8s/deploy/burst$"
    )
    routing = one_matching(gke_up, rf"^kubectl --context {primary_ctx} apply -k istio-manifests$")
    # Redis (primary) before the burst workers that use it; routing once both exist.
    assert gke_up.index(apply_primary) < gke_up.index(apply_burst) < gke_up.index(routing)
    written = one_matching(gke_up, r"^cat > k8s/deploy/primary/kustomization.yaml")
    assert gke_up.index(written) < gke_up.index(apply_primary)


def test_gke_dry_run_teardown(stand_ins: tuple[dict[str, str], Path]) -> None:
    env, calls = stand_ins
    done = run_script("gke.sh", ["--dry-run", "--project", "p", "teardown"], env)
    assert done.returncode == 0, done.stderr
    printed = commands(done.stdout)
    one_matching(printed, r"^gcloud container clusters delete primary burst .*--quiet$")
    one_matching(printed, r"^gcloud compute firewall-rules delete ")
    one_matching(printed, r"^gcloud artifacts repositories delete ")
    one_matching(printed, r"^istioctl uninstall -y --purge ")
    assert not calls.exists()


def test_gke_overlays_pin_the_pushed_images(
    stand_ins: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    # Not a dry run: the overlays step only writes files, so it really runs here.
    env, calls = stand_ins
    deploy_dir = tmp_path / "deploy"
    done = run_script(
        "gke.sh",
        ["--project", "demo", "--zone", "us-east1-c", "--tag", "abc123",
         "--deploy-dir", str(deploy_dir), "overlays"],
        env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not calls.exists(), f"writing the overlays ran: {calls.read_text()}"
    registry = "us-east1-docker.pkg.dev/demo/istio-burst"
    for overlay in ("primary", "burst"):
        pinned = kustomize(deploy_dir / overlay)
        plain = kustomize(K8S / "overlays" / overlay)
        images = set()
        for obj in pinned:
            if obj["kind"] == "Deployment":
                for container in obj["spec"]["template"]["spec"]["containers"]:
                    images.add(container["image"])
        expected = {f"{registry}/worker:abc123"}
        if overlay == "primary":
            expected |= {f"{registry}/frontend:abc123", f"{registry}/istiowatcher:abc123"}
            expected |= {"redis:7.4-alpine"}
        assert images == expected
        # Everything else is the overlay itself.
        strip = yaml.safe_dump(plain).replace("istio-burst/", f"{registry}/")
        assert yaml.safe_dump(pinned) == strip.replace(":0.1.0", ":abc123")


@pytest.fixture
def kind_run(stand_ins: tuple[dict[str, str], Path], tmp_path: Path) -> list[str]:
    env, calls = stand_ins
    env["WORK_DIR"] = str(tmp_path / "work")
    done = run_script("kind-e2e.sh", ["--dry-run"], env)
    assert done.returncode == 0, done.stderr
    assert not calls.exists(), f"a dry run ran: {calls.read_text()}"
    assert not (tmp_path / "work").exists(), "a dry run wrote files"
    assert "end to end: OK" in done.stderr
    return commands(done.stdout)


def test_kind_dry_run_builds_the_mesh_and_checks_the_burst(kind_run: list[str]) -> None:
    for cluster in ("primary", "burst"):
        one_matching(kind_run, rf"^kind create cluster --name istio-burst-{cluster} ")
    for name in mesh_setting("SERVICE_IMAGES").split():
        one_matching(kind_run, rf"^docker build -f services/{name}/Dockerfile ")
    one_matching(
        kind_run, r"^kind load docker-image istio-burst/worker:e2e --name istio-burst-burst"
    )
    installs = [c for c in kind_run if c.startswith("istioctl install ")]
    assert len(installs) == 3
    assert "values.global.multiCluster.clusterName=burst" in installs[2]
    secret = one_matching(kind_run, r"^istioctl create-remote-secret ")
    assert "--server 'https://<burst-node-ip>:6443'" in secret
    one_matching(kind_run, r"apply -k .*/work/deploy/primary$")
    one_matching(kind_run, r"apply -k .*/work/deploy/burst$")
    load = one_matching(
        kind_run, r"exec deploy/frontend-deployment -- python -m .*set_frequency 30$"
    )
    burst = one_matching(kind_run, r"until it prints 100,")
    hashes = one_matching(
        kind_run, r"REDISCLI_AUTH=.*redis-cli --raw SUBSCRIBE calculation' \d+ \| grep .*bursty-"
    )
    back = one_matching(kind_run, r"until it prints 0,")
    assert kind_run.index(load) < kind_run.index(burst) < kind_run.index(hashes)
    assert kind_run.index(hashes) < kind_run.index(back)
    # The clusters go away at the end (unless --keep).
    assert kind_run[-2:] == [
        "kind delete cluster --name istio-burst-primary",
        "kind delete cluster --name istio-burst-burst",
    ]


def test_kind_clusters_address_ranges_do_not_overlap() -> None:
    # The routes between the kind nodes join the two clusters into one network only if no pod
    # or service range of one overlaps a range of the other.
    text = (SCRIPTS / "kind-e2e.sh").read_text()
    ranges = [
        ipaddress.ip_network(r)
        for r in re.findall(r"^(?:PRIMARY|BURST)_(?:PODS|SERVICES)=(\S+)$", text, re.M)
    ]
    assert len(ranges) == 4
    for i, one in enumerate(ranges):
        for other in ranges[i + 1 :]:
            assert not one.overlaps(other), (one, other)


def test_shown_commands_read_back_as_the_same_words() -> None:
    words = ["plain", "a b", "it's", "", "x=$(y)", "{.a[0]}", "--set=v", "*", "a|b"]
    script = (
        "source scripts/lib/common.sh\n"
        'line=$(show "$@")\n'
        'eval "back=(${line#+ })"\n'
        'printf "%s\\n" "${back[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "-c", script, "bash", *words], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:-1] == words


def test_the_east_west_gateway_is_on_the_scripts_network() -> None:
    network = mesh_setting("NETWORK")
    (operator,) = load_yaml(SCRIPTS / "istio" / "eastwest-gateway.yaml")
    (gateway,) = operator["spec"]["components"]["ingressGateways"]
    assert gateway["label"]["topology.istio.io/network"] == network
    env = {e["name"]: e["value"] for e in gateway["k8s"]["env"]}
    assert env["ISTIO_META_REQUESTED_NETWORK_VIEW"] == network
    ports = {p["port"] for p in gateway["k8s"]["service"]["ports"]}
    assert {15012, 15017} <= ports  # istiod's discovery and webhook, for the remote cluster
    exposed = load_yaml(SCRIPTS / "istio" / "expose-istiod.yaml")
    istiod_gateway = next(o for o in exposed if o["kind"] == "Gateway")
    assert istiod_gateway["spec"]["selector"] == {"istio": gateway["label"]["istio"]}
    assert {s["port"]["number"] for s in istiod_gateway["spec"]["servers"]} == {15012, 15017}


def test_the_deploy_dir_is_ignored_by_git() -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    done = subprocess.run(
        [git, "check-ignore", "-q", "k8s/deploy/primary/kustomization.yaml"], cwd=REPO
    )
    assert done.returncode == 0


# --- The Kubernetes steps, run for real against two local API servers ----------------------------
# kubectl is the real one (pinned), its contexts named as the scripts expect, one per cluster.
# Nothing here has GKE, a node or istioctl, so these are not run for real: gke.sh's `clusters`,
# `firewall`, `images` and `teardown` (gcloud, docker: stand-ins that fail if called);
# kind-e2e.sh's kind clusters, node routes and images (kind, docker: stand-ins that succeed);
# istioctl's installs in both (a stand-in that succeeds; create-remote-secret prints a Secret as
# istioctl does), with the Services they would make created by the test, and on GKE the address
# its load balancer would write; Istio's sample Prometheus (downloaded: a stand-in manifest).
# `rollout status` waits on Deployments that StandInControllers marks ready, since no node runs
# their pods. kind-e2e.sh stops where the load is set: `kubectl exec` into a frontend pod needs
# a node to run it; the weights it then waits for are read by burst_weight, tested on its own.

GKE_CONTEXTS = {"gke_demo_us-east1-c_primary": "primary", "gke_demo_us-east1-c_burst": "burst"}
KIND_CONTEXTS = {"kind-istio-burst-primary": "primary", "kind-istio-burst-burst": "burst"}
APP_NAMESPACE = "default"
ISTIO_SYSTEM = "istio-system"
NO_CLOUD = dict.fromkeys(("gcloud", "docker", "kind", "istioctl", "helm", "curl"), "exit 97")
REMOTE_SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: istio-remote-secret-burst
  namespace: istio-system
  labels: {istio/multiCluster: "true"}
  annotations: {networking.istio.io/cluster: burst}
stringData: {burst: "a kubeconfig for the burst API server"}
"""
ISTIOCTL = f"case $1 in create-remote-secret) cat <<'EOF'\n{REMOTE_SECRET}EOF\n;; esac"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_on(
    clusters: Clusters, name: str, args: Sequence[str], env: dict[str, str], out: Path
) -> Run:
    """Run a script while StandInControllers plays the clusters' controllers."""
    out.mkdir()
    with (out / "stdout").open("w") as stdout, (out / "stderr").open("w") as stderr:
        process = subprocess.Popen(
            ["bash", str(SCRIPTS / name), *args], cwd=REPO, env=env, stdout=stdout, stderr=stderr
        )
        kubes = [clusters.primary, clusters.burst]
        code = StandInControllers(kubes, APP_NAMESPACE).run_until_exit(process, timeout=600)
    return Run(code, (out / "stdout").read_text(), (out / "stderr").read_text())


def apply(kube: LocalKube, obj: dict[str, object]) -> None:
    kube.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(obj))


def istio_service(kube: LocalKube, name: str, kind: str = "ClusterIP") -> Obj:
    """A Service in istio-system as istioctl's install leaves it (the real API allocates its
    ClusterIP)."""
    apply(kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ISTIO_SYSTEM}})
    port = {"name": "tcp-istiod", "port": 15012} if kind == "ClusterIP" else {"port": 80}
    apply(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ISTIO_SYSTEM},
            "spec": {"type": kind, "selector": {"istio": name}, "ports": [port]},
        },
    )
    return get(kube, "service", name, ISTIO_SYSTEM)


def forget_earlier_runs(clusters: Clusters) -> None:
    """Remove what an earlier script run left that this one must make itself (a namespace
    cannot be deleted here: no controller finishes its deletion)."""
    for kube in (clusters.primary, clusters.burst):
        kube.kubectl("label", "namespace", APP_NAMESPACE, "istio-injection-")
        apply(kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ISTIO_SYSTEM}})
        kube.kubectl(
            "delete", "-n", ISTIO_SYSTEM, "--all", "--wait=false",
            "secrets,serviceaccounts,services,gateways.networking.istio.io,"
            "virtualservices.networking.istio.io",
        )  # fmt: skip
        kube.kubectl("label", "namespace", ISTIO_SYSTEM, "topology.istio.io/network-")
        kube.kubectl(
            "annotate", "namespace", ISTIO_SYSTEM, "topology.istio.io/controlPlaneClusters-"
        )


def load_balancer_address(kube: LocalKube, service: str, ip: str) -> None:
    """What GKE's load balancer writes on a Service of istio-system once it serves `ip`."""
    status = {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}
    kube.kubectl(
        "patch", "service", service, "-n", ISTIO_SYSTEM, "--subresource=status",
        "--type=merge", "-p", orjson.dumps(status).decode(),
    )  # fmt: skip


def get(kube: LocalKube, kind: str, name: str, namespace: str = APP_NAMESPACE) -> Obj:
    done = kube.kubectl("get", kind, name, "-n", namespace, "-o", "json")
    found: Obj = orjson.loads(done.stdout)
    return found


def images(kube: LocalKube) -> set[str]:
    done = kube.kubectl("get", "deployments", "-n", APP_NAMESPACE, "-o", "json")
    return {
        c["image"]
        for d in orjson.loads(done.stdout)["items"]
        for c in d["spec"]["template"]["spec"]["containers"]
    }


def test_gke_deploy_and_status_against_two_api_servers(clusters: Clusters, tmp_path: Path) -> None:
    forget_earlier_runs(clusters)
    kubeconfig = clusters.kubeconfig(tmp_path / "kubeconfig", GKE_CONTEXTS)
    env, calls = tools_env(tmp_path, NO_CLOUD, kubeconfig)
    istio_service(clusters.primary, "istio-ingressgateway", "LoadBalancer")
    load_balancer_address(clusters.primary, "istio-ingressgateway", "203.0.113.7")
    args = ["--project", "demo", "--zone", "us-east1-c", "--tag", "t1",
            "--deploy-dir", str(tmp_path / "deploy"), "deploy"]  # fmt: skip
    run = run_on(clusters, "gke.sh", args, env, tmp_path / "gke")
    assert run.returncode == 0, run.stderr
    assert not calls.exists(), f"called: {calls.read_text()}"
    registry = "us-east1-docker.pkg.dev/demo/istio-burst"
    assert images(clusters.primary) == {
        f"{registry}/{name}:t1" for name in ("worker", "frontend", "istiowatcher")
    } | {"redis:7.4-alpine"}
    assert images(clusters.burst) == {f"{registry}/worker:t1"}
    for kube in (clusters.primary, clusters.burst):
        labels = get(kube, "namespace", APP_NAMESPACE, "")["metadata"]["labels"]
        assert labels["istio-injection"] == "enabled"
    # The routing on primary only: the watcher and Istio's control plane read it there.
    get(clusters.primary, "virtualservice", "worker-virtual-service")
    missing = clusters.burst.kubectl("get", "virtualservices", "-n", APP_NAMESPACE, "-o", "name")
    assert missing.stdout == ""
    # The status step read the weights and the page's address from the API.
    assert "primary=100 burst=0 " in run.stdout.splitlines()
    assert "the page: http://203.0.113.7/" in run.stderr


def istio_env(
    clusters: Clusters, tmp_path: Path, contexts: dict[str, str], stand_ins: dict[str, str]
) -> tuple[dict[str, str], Path]:
    """tools_env with the contexts, istioctl's stand-in and a stand-in Prometheus manifest."""
    kubeconfig = clusters.kubeconfig(tmp_path / "kubeconfig", contexts)
    env, calls = tools_env(tmp_path, NO_CLOUD | stand_ins | {"istioctl": ISTIOCTL}, kubeconfig)
    prometheus = tmp_path / "prometheus.yaml"
    prometheus.write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: prometheus, namespace: "
        f"{ISTIO_SYSTEM}}}\n"
    )
    env["PROMETHEUS_MANIFEST"] = str(prometheus)
    return env, calls


def assert_mesh_installed(clusters: Clusters, calls: Path, discovery: str) -> None:
    """What scripts/lib/mesh.sh's kubectl steps leave on the clusters."""
    for kube in (clusters.primary, clusters.burst):
        labels = get(kube, "namespace", ISTIO_SYSTEM, "")["metadata"]["labels"]
        assert labels["topology.istio.io/network"] == mesh_setting("NETWORK")
    burst_istio = get(clusters.burst, "namespace", ISTIO_SYSTEM, "")["metadata"]
    assert burst_istio["annotations"]["topology.istio.io/controlPlaneClusters"] == "primary"
    for kind, name in (("gateway", "istiod-gateway"), ("virtualservice", "istiod-vs")):
        get(clusters.primary, f"{kind}.networking.istio.io", name, ISTIO_SYSTEM)
    get(clusters.primary, "secret", "istio-remote-secret-burst", ISTIO_SYSTEM)
    get(clusters.primary, "serviceaccount", "prometheus", ISTIO_SYSTEM)
    # The remote found the primary's istiod at the address read from the API server.
    remote = one_matching(calls.read_text().splitlines(), r"^istioctl install .*profile=remote")
    assert f"values.global.remotePilotAddress={discovery} " in remote


def test_gke_istio_runs_its_kubectl_steps(clusters: Clusters, tmp_path: Path) -> None:
    forget_earlier_runs(clusters)
    env, calls = istio_env(clusters, tmp_path, GKE_CONTEXTS, {})
    istio_service(clusters.primary, "istio-eastwestgateway", "LoadBalancer")
    load_balancer_address(clusters.primary, "istio-eastwestgateway", "203.0.113.15")
    args = ["--project", "demo", "--zone", "us-east1-c", "istio"]
    run = run_on(clusters, "gke.sh", args, env, tmp_path / "gke")
    assert run.returncode == 0, run.stderr
    assert_mesh_installed(clusters, calls, "203.0.113.15")


def test_kind_e2e_runs_its_kubernetes_steps_up_to_the_load(
    clusters: Clusters, tmp_path: Path
) -> None:
    env, calls = istio_env(
        clusters, tmp_path, KIND_CONTEXTS, {"kind": "exit 0", "docker": "exit 0"}
    )
    env["WORK_DIR"] = str(tmp_path / "work")
    forget_earlier_runs(clusters)
    eastwest = istio_service(clusters.primary, "istio-eastwestgateway")["spec"]["clusterIP"]
    run = run_on(clusters, "kind-e2e.sh", [], env, tmp_path / "kind")
    printed = commands(run.stdout)
    # It stops at the first command that needs a pod running on a node.
    assert run.returncode != 0
    assert printed[-3] == (
        "kubectl --context kind-istio-burst-primary -n default exec deploy/frontend-deployment"
        " -- python -m istio_burst.frontend.set_frequency 30"
    ), run.stderr
    assert "does not have a host assigned" in run.stderr
    assert printed[-2:] == [
        "kind delete cluster --name istio-burst-primary",
        "kind delete cluster --name istio-burst-burst",
    ]
    # Everything before it happened on the API servers.
    assert images(clusters.primary) == {
        f"istio-burst/{name}:e2e" for name in ("worker", "frontend", "istiowatcher")
    } | {"redis:7.4-alpine"}
    assert images(clusters.burst) == {"istio-burst/worker:e2e"}
    assert_mesh_installed(clusters, calls, eastwest)


def test_burst_weight_reads_what_the_watcher_writes(deployed: Applied, tmp_path: Path) -> None:
    kubeconfig = deployed.clusters.kubeconfig(tmp_path / "kubeconfig", KIND_CONTEXTS)
    env, _calls = tools_env(tmp_path, NO_CLOUD, kubeconfig)
    primary = deployed.clusters.primary

    def burst_weight() -> str:
        script = 'source scripts/lib/common.sh && source scripts/lib/mesh.sh && burst_weight "$0"'
        done = subprocess.run(
            ["bash", "-c", script, "kind-istio-burst-primary"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def set_weights(primary_weight: int, burst: int) -> None:
        patch = [
            {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": primary_weight},
            {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": burst},
        ]
        primary.kubectl(
            "patch", "virtualservice", "worker-virtual-service", "-n", APP_NAMESPACE,
            "--type=json", "-p", orjson.dumps(patch).decode(),
        )  # fmt: skip

    set_weights(100, 0)
    assert burst_weight() == "0"
    try:
        set_weights(0, 100)
        assert burst_weight() == "100"
    finally:
        set_weights(100, 0)
