#!/usr/bin/env bash
# Builds the pinned Kubernetes test dependencies from their published Go modules, once:
#   kube-apiserver, kubectl (the same release) and etcd (the release Kubernetes itself pins).
# The pins are this folder's go.mod/go.sum; scripts/lib/go-build.sh caches the binaries outside
# the repository. Prints the folder that holds the binaries.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/go-build.sh
. "$HERE/../lib/go-build.sh"
# Bump RECIPE when the way of building changes; the pins themselves are go.mod and go.sum.
RECIPE=1
go_build_cached kube "$HERE" "$RECIPE" "kube-apiserver, kubectl and etcd" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kubectl=k8s.io/kubernetes/cmd/kubectl \
  etcd=go.etcd.io/etcd/server/v3
