#!/usr/bin/env bash
# Builds the pinned Istio control-plane binaries from Istio's published Go module, once:
#   istioctl (analyze) and pilot-discovery (istiod: validation webhook and xDS server).
# The pin is this folder's go.mod/go.sum: istio.io/istio v0.0.0-20260827124520-eed52ebb66ad,
# a commit of 2026-08-27 whose VERSION file says 1.31 (after the 1.31.0-rc.0 tag). Istio tags
# its releases without a "v" (1.30.3), so the module proxy knows them only by pseudo-versions,
# and it answers 403 "not available" for every release-1.30 commit tried (the 1.30.0 to 1.30.3
# tags and the branch head); this is the newest commit it serves (`go list -m ...@latest`).
# scripts/lib/go-build.sh caches the binaries outside the repository. Prints their folder.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/go-build.sh
. "$HERE/../lib/go-build.sh"
# Bump RECIPE when the way of building changes; the pin itself is go.mod and go.sum.
RECIPE=1
go_build_cached istio "$HERE" "$RECIPE" "istioctl and pilot-discovery" \
  istioctl=istio.io/istio/istioctl/cmd/istioctl \
  pilot-discovery=istio.io/istio/pilot/cmd/pilot-discovery
