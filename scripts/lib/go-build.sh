# shellcheck shell=bash
# Sourced by scripts/kube/build.sh and scripts/istio-binaries/build.sh: builds Go programs from
# the calling folder's pinned module (its go.mod/go.sum), once. The binaries go to a cache
# outside the repository, keyed by those pins and a recipe number, so a changed pin builds anew
# and an unchanged one returns at once. Prints the folder that holds the binaries.
#
#   go_build_cached LABEL MODULE_DIR RECIPE "WHAT" NAME=PACKAGE...

go_build_cached() {
  local label=$1 here=$2 recipe=$3 what=$4
  shift 4
  local cache_root=${ISTIO_BURST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/istio-burst}
  local key out pair start
  key=$( (cat "$here/go.mod" "$here/go.sum"; echo "recipe $recipe") | sha256sum | cut -c1-16)
  out="$cache_root/$label-$key"
  local have_all=1
  for pair in "$@"; do [ -x "$out/bin/${pair%%=*}" ] || have_all=0; done
  if [ "$have_all" = 1 ]; then echo "$out/bin"; return 0; fi

  command -v go >/dev/null 2>&1 || {
    echo "[$label] go is missing: Go 1.26 or newer builds $what from their published modules (https://go.dev/dl; Debian's golang is too old)" >&2
    return 1
  }
  echo "[$label] building $what into $out (first time only: several minutes)" >&2
  mkdir -p "$out/bin"
  start=$(date +%s)
  (
    cd "$here"
    export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
    # -trimpath and no debug info: smaller binaries that do not depend on where they were built.
    for pair in "$@"; do
      go build -trimpath -ldflags='-s -w' -o "$out/bin/${pair%%=*}.tmp" "${pair#*=}"
    done
  ) >&2 || return 1
  for pair in "$@"; do mv "$out/bin/${pair%%=*}.tmp" "$out/bin/${pair%%=*}"; done
  echo "[$label] built in $(( $(date +%s) - start )) s: $(du -sh "$out" | cut -f1)" >&2
  echo "$out/bin"
}
