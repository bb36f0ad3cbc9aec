"""`./run kube`: a real Kubernetes API on loopback until Ctrl-C or SIGTERM.

Prints exactly one line on stdout, `KUBECONFIG=<path>`, once the API answers and the Istio and
Gateway API CRDs are Established; everything else goes to stderr. On exit it stops etcd and
kube-apiserver and removes their data, certificates and kubeconfig.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from harness.kube.binaries import kube_bin_dir
from harness.kube.cluster import LocalKube, remove
from harness.processes import stop_on_signals, supervise


def main() -> int:
    bin_dir = kube_bin_dir()  # may build first: before the clock starts
    stop = stop_on_signals()
    workdir = Path(tempfile.mkdtemp(prefix="istio-burst-kube-"))
    kube = LocalKube(workdir, bin_dir)
    began = time.monotonic()
    try:
        kube.start()
        print(f"[kube] API at {kube.server}, ready in {time.monotonic() - began:.1f} s; "
              f"logs in {workdir / 'logs'}; Ctrl-C stops it and removes {workdir}",
              file=sys.stderr)  # fmt: skip
        print(f"KUBECONFIG={kube.kubeconfig}", flush=True)
        return supervise(stop, (kube.etcd, kube.apiserver), "kube")
    finally:
        kube.stop()
        remove(workdir)
        print("[kube] stopped; data removed", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
