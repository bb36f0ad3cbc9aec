"""Where the pinned kube-apiserver, kubectl and etcd are: built once by scripts/kube/build.sh."""

from __future__ import annotations

from pathlib import Path

from harness.go_built import go_built

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "kube" / "build.sh"
NAMES = ("kube-apiserver", "kubectl", "etcd")


def kube_bin_dir() -> Path:
    """The folder with the three binaries (ISTIO_BURST_KUBE_BIN: one built elsewhere instead)."""
    return go_built(BUILD_SCRIPT, NAMES, "ISTIO_BURST_KUBE_BIN")
