#!/usr/bin/env bash
# Builds the pinned Kubernetes test dependencies from their published Go modules, once:
#   kube-apiserver, kubectl (the same release) and etcd (the release Kubernetes itself pins).
# The pins are this folder's go.mod/go.sum. The binaries go to a cache outside the repository,
# keyed by those pins, so a changed pin builds anew and an unchanged one returns at once.
# Prints the folder that holds the binaries.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE_ROOT=${ISTIO_BURST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/istio-burst}
# Bump RECIPE when the way of building changes; the pins themselves are go.mod and go.sum.
RECIPE=1
KEY=$( (cat "$HERE/go.mod" "$HERE/go.sum"; echo "recipe $RECIPE") | sha256sum | cut -c1-16)
OUT="$CACHE_ROOT/kube-$KEY"
BINARIES=(kube-apiserver kubectl etcd)

have_all() { local b; for b in "${BINARIES[@]}"; do [ -x "$OUT/bin/$b" ] || return 1; done; }
if have_all; then echo "$OUT/bin"; exit 0; fi

command -v go >/dev/null 2>&1 || {
  echo "[kube] go is missing: Go 1.26 or newer builds kube-apiserver, kubectl and etcd (https://go.dev/dl, or your package manager)" >&2
  exit 1
}
echo "[kube] building kube-apiserver, kubectl and etcd into $OUT (first time only: several minutes)" >&2
mkdir -p "$OUT/bin"
start=$(date +%s)
(
  cd "$HERE"
  export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
  # -trimpath and no debug info: smaller binaries that do not depend on where they were built.
  go build -trimpath -ldflags='-s -w' -o "$OUT/bin/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  go build -trimpath -ldflags='-s -w' -o "$OUT/bin/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
  go build -trimpath -ldflags='-s -w' -o "$OUT/bin/etcd.tmp" go.etcd.io/etcd/server/v3
) >&2
for b in "${BINARIES[@]}"; do mv "$OUT/bin/$b.tmp" "$OUT/bin/$b"; done
echo "[kube] built in $(( $(date +%s) - start )) s: $(du -sh "$OUT" | cut -f1)" >&2
echo "$OUT/bin"
