"""A real, local Kubernetes API (etcd + kube-apiserver, built from their Go modules) for the
tests and for `./run kube`."""

from harness.kube.binaries import kube_bin_dir
from harness.kube.cluster import LocalKube

__all__ = ["LocalKube", "kube_bin_dir"]
