#!/usr/bin/env bash
# Builds the pinned Istio control-plane binaries from Istio's published Go module, once:
#   istioctl (analyze) and pilot-discovery (istiod: validation webhook and xDS server).
# The pin is this folder's go.mod/go.sum: istio.io/istio v0.0.0-20260827124520-eed52ebb66ad,
# master of 2026-08-27 (VERSION 1.32-dev). Istio's release tags (1.30.3) have no "v", so the
# module proxy knows releases only as pseudo-versions, and it answers 403 "not available" for
# every release-1.30 commit tried (the 1.30.0-1.30.3 tags and the branch head); this is the
# newest commit it serves (`go list -m istio.io/istio@latest`).
# The binaries go to a cache outside the repository, keyed by the pin, so a changed pin builds
# anew and an unchanged one returns at once. Prints the folder that holds the binaries.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE_ROOT=${ISTIO_BURST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/istio-burst}
KEY=$(cat "$HERE/go.mod" "$HERE/go.sum" "$HERE/build.sh" | sha256sum | cut -c1-16)
OUT="$CACHE_ROOT/istio-$KEY"
BINARIES=(istioctl pilot-discovery)

have_all() { local b; for b in "${BINARIES[@]}"; do [ -x "$OUT/bin/$b" ] || return 1; done; }
if have_all; then echo "$OUT/bin"; exit 0; fi

command -v go >/dev/null 2>&1 || {
  echo "[istio] go is missing: Go 1.26 or newer builds istioctl and pilot-discovery (https://go.dev/dl, or your package manager)" >&2
  exit 1
}
echo "[istio] building istioctl and pilot-discovery into $OUT (first time only: several minutes)" >&2
mkdir -p "$OUT/bin"
start=$(date +%s)
(
  cd "$HERE"
  export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
  # -trimpath and no debug info: smaller binaries that do not depend on where they were built.
  go build -trimpath -ldflags='-s -w' -o "$OUT/bin/istioctl.tmp" istio.io/istio/istioctl/cmd/istioctl
  go build -trimpath -ldflags='-s -w' -o "$OUT/bin/pilot-discovery.tmp" istio.io/istio/pilot/cmd/pilot-discovery
) >&2
for b in "${BINARIES[@]}"; do mv "$OUT/bin/$b.tmp" "$OUT/bin/$b"; done
echo "[istio] built in $(( $(date +%s) - start )) s: $(du -sh "$OUT" | cut -f1)" >&2
echo "$OUT/bin"
