"""`--mesh istio`: Istio's own control plane instead of HAProxy.

One component, `mesh` (`python -m harness.istio`, from the repository), runs a local Kubernetes
API with the project's manifests applied, istiod, and upstream Envoy as the frontend's outbound
proxy, configured by istiod alone. The watcher patches the worker's VirtualService through that
API, as in a cluster, and reads the load from Envoy's own metrics.
"""

from __future__ import annotations

import sys
from pathlib import Path

from istio_burst.demo.settings import DemoSettings
from istio_burst.demo.supervisor import Component, DemoError, http_ok

REPO = Path(__file__).resolve().parents[3]
MESH_MODULE = "harness.istio"
MESH_DIR = Path("mesh")  # under the state dir: harness.istio's own state dir
WATCHER_KUBECONFIG = MESH_DIR / "watcher.kubeconfig"  # written by harness.istio
ADMIN_KUBECONFIG = MESH_DIR / "kube" / "kubeconfig"  # the local API's admin
ENVOY_ADMIN_HOST = "127.0.0.1"  # Envoy's admin (ready, metrics) listens on this address only
START_TIMEOUT = 180.0  # etcd, kube-apiserver, the CRDs, istiod and Envoy, on a loaded machine

# The frontend's requests to the workers, as Envoy counts them on its outbound listener (its
# stat prefix is outbound_80: harness.istio.envoy).
ENVOY_QUERY = (
    'sum(rate(envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="outbound_80"}[5s]))'
)
ENVOY_METRICS_PATH = "/stats/prometheus"


def mesh_component(s: DemoSettings, state_dir: Path, workers: dict[str, int]) -> Component:
    if not (REPO / "harness" / "istio" / "__main__.py").is_file():
        raise DemoError(
            "--mesh istio runs from a clone of the repository (./run demo --mesh istio): it "
            "builds istiod and a Kubernetes API from source the first time"
        )
    kubeconfig = state_dir / WATCHER_KUBECONFIG
    envoy_ready = http_ok(f"http://{ENVOY_ADMIN_HOST}:{s.proxy_metrics_port}/ready")
    argv = [
        sys.executable, "-m", MESH_MODULE, "--state-dir", str(state_dir / MESH_DIR),
        "--proxy-port", str(s.proxy_port), "--admin-port", str(s.proxy_metrics_port),
    ]  # fmt: skip
    for subset, port in workers.items():
        argv += ["--worker", f"{subset}={s.bind}:{port}"]
    return Component(
        name="mesh",
        argv=argv,
        port=s.proxy_port,
        ready=lambda: kubeconfig.is_file() and envoy_ready(),
        env={"PYTHONPATH": str(REPO)},
        hint="Its log says which part (etcd, kube-apiserver, istiod, envoy) failed.",
        start_timeout=max(START_TIMEOUT, s.start_timeout),
    )


def watcher_env(state_dir: Path) -> dict[str, str]:
    return {
        "ACTUATOR": "istio",
        "KUBECONFIG": str(state_dir / WATCHER_KUBECONFIG),
        "NAMESPACE": "default",
        "QUERY": ENVOY_QUERY,
    }
