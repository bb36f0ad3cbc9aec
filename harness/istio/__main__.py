"""The mesh of `istio-burst demo --mesh istio`: a local Kubernetes API, istiod, and upstream Envoy
as the frontend's outbound proxy, configured by istiod alone; until SIGTERM or Ctrl-C.

    python -m harness.istio --state-dir DIR --worker primary=HOST:PORT --worker burst=HOST:PORT \
        --proxy-port PORT --admin-port PORT

It applies `k8s/overlays/primary` and `istio-manifests` (the worker's VirtualService at 100/0)
as a user does, registers the local workers as WorkloadEntries with their subset's labels,
writes a kubeconfig of the watcher's own ServiceAccount to DIR/watcher.kubeconfig, then keeps
Envoy on 127.0.0.1:--proxy-port: what reaches it goes to worker-service by istiod's routes.
Envoy's admin (and /stats/prometheus) is on --admin-port. Logs are in DIR; on exit everything
it started stops.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness.istio.envoy import WORKER_HOST, EnvoyProxy, sidecar_node
from harness.istio.istiod import UPSTREAM_ENVOY, Istiod
from harness.istio.workers import worker_entries
from harness.kube import LocalKube
from harness.processes import stop_on_signals, supervise

REPO = Path(__file__).resolve().parents[2]
WATCHER_KUBECONFIG = "watcher.kubeconfig"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.istio", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--worker", action="append", required=True, help="SUBSET=HOST:PORT")
    parser.add_argument("--proxy-port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, required=True)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    stop = stop_on_signals()
    state: Path = args.state_dir.resolve()
    workers = dict(spec.split("=", 1) for spec in args.worker)
    kube = LocalKube(state / "kube")
    istiod: Istiod | None = None
    proxy: EnvoyProxy | None = None
    began = time.monotonic()
    try:
        kube.start()
        istiod = Istiod(kube, state / "istiod", **UPSTREAM_ENVOY).start()
        kube.kubectl("apply", "-k", str(REPO / "k8s" / "overlays" / "primary"))
        kube.kubectl("apply", "-k", str(REPO / "istio-manifests"))
        entries = []
        for subset, address in workers.items():
            host, port = address.rsplit(":", 1)
            entries += worker_entries({subset: int(port)}, host)
        kube.kubectl("apply", "-f", "-", input="\n---\n".join(map(json.dumps, entries)))
        kube.service_account_kubeconfig("default", "istiowatcher", state / WATCHER_KUBECONFIG)
        proxy = EnvoyProxy(
            state / "envoy",
            istiod.xds_address,
            sidecar_node("default", "frontend", {"app": "frontend"}),
            authority=WORKER_HOST,
            listen_port=args.proxy_port,
            admin_port=args.admin_port,
        ).start(timeout=60)
        took = time.monotonic() - began
        print(
            f"[mesh] ready in {took:.1f} s: API {kube.server}, Envoy :{args.proxy_port}", flush=True
        )
        return supervise(stop, (kube.etcd, kube.apiserver, istiod.process, proxy.process), "mesh")
    finally:
        for part in (proxy, istiod, kube):
            if part is not None:
                part.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
