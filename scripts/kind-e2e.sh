#!/usr/bin/env bash
# End to end on your machine: two kind clusters, Istio primary-remote, the app, a load step,
# and a check that the burst cluster's workers (bursty- hashes) take the traffic, then give it
# back. Opt-in: it needs Docker and several GB of memory. The test suite runs it in --dry-run, and
# its kubectl steps against local API servers (kind, docker and istioctl replaced).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
# shellcheck source=lib/mesh.sh
source scripts/lib/mesh.sh

PREFIX=${KIND_PREFIX:-istio-burst}
WORK_DIR=${WORK_DIR:-${TMPDIR:-/tmp}/istio-burst-kind}
TAG=e2e
LOAD=${LOAD:-30}          # req/s during the load step: above the watcher's HIGH (15)
WAIT_SECONDS=${WAIT_SECONDS:-420}
KEEP=0

# Each cluster its own pod and service ranges, so that routes between the nodes can join them
# into one network (as one VPC does on GKE).
PRIMARY_PODS=10.10.0.0/16
PRIMARY_SERVICES=10.110.0.0/16
BURST_PODS=10.20.0.0/16
BURST_SERVICES=10.120.0.0/16

usage() {
  cat <<EOF
Usage: scripts/kind-e2e.sh [--dry-run] [--keep]

Creates the kind clusters $PREFIX-primary and $PREFIX-burst, joins them into one Istio mesh
(primary-remote, one network: routes between the kind nodes), builds the three images and loads
them into the clusters, deploys k8s/overlays/primary and /burst and istio-manifests/, then:
  1. sets the deployment's frequency to $LOAD req/s (above the watcher's HIGH threshold);
  2. waits until the watcher has moved worker-virtual-service to burst (weight 100);
  3. waits for a bursty- hash on Redis's calculation channel (a burst worker answered);
  4. sets the frequency to 0 and waits until the watcher has moved the traffic back (burst 0).
Each wait gives up after ${WAIT_SECONDS}s (WAIT_SECONDS). The clusters are deleted at the end,
also on failure, unless --keep.

Options:
  --dry-run   print every command, run none [DRY_RUN=1]
  --keep      leave the clusters running (kubectl --context kind-$PREFIX-primary ...)
  -h, --help  this text
Environment: KIND_PREFIX ($PREFIX), WORK_DIR ($WORK_DIR: kind configs and the
image-pinning kustomizations), LOAD, WAIT_SECONDS, ISTIO_RELEASE ($ISTIO_RELEASE).

Needs: docker (running), kind, kubectl, istioctl of Istio $ISTIO_RELEASE, network access to
pull redis and Istio's images, and about 8 GB of memory for Docker.
EOF
}

while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY_RUN=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

PRIMARY_KIND=$PREFIX-primary
BURST_KIND=$PREFIX-burst
CTX_PRIMARY=kind-$PRIMARY_KIND
CTX_BURST=kind-$BURST_KIND

cleanup() {
  local status=$?
  if [ "$KEEP" = 1 ]; then
    say "clusters kept: --context $CTX_PRIMARY, --context $CTX_BURST"
  else
    say "deleting the kind clusters"
    run kind delete cluster --name "$PRIMARY_KIND" || true
    run kind delete cluster --name "$BURST_KIND" || true
  fi
  exit "$status"
}

create_clusters() {
  local name pods services
  for name in primary burst; do
    if [ "$name" = primary ]; then
      pods=$PRIMARY_PODS services=$PRIMARY_SERVICES
    else
      pods=$BURST_PODS services=$BURST_SERVICES
    fi
    write_file "$WORK_DIR/kind-$name.yaml" "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  podSubnet: $pods
  serviceSubnet: $services"
    run kind create cluster --name "$PREFIX-$name" --config "$WORK_DIR/kind-$name.yaml" \
      --wait 3m
  done
}

# One network: each node routes the other cluster's pod and service ranges to the other node.
# The service range matters for istiod: the burst cluster reaches it at the ClusterIP of the
# primary's east-west gateway (kind has no load balancers).
connect_clusters() {
  capture PRIMARY_NODE_IP '<primary-node-ip>' docker inspect -f \
    '{{.NetworkSettings.Networks.kind.IPAddress}}' "$PRIMARY_KIND-control-plane"
  capture BURST_NODE_IP '<burst-node-ip>' docker inspect -f \
    '{{.NetworkSettings.Networks.kind.IPAddress}}' "$BURST_KIND-control-plane"
  local range
  for range in "$BURST_PODS" "$BURST_SERVICES"; do
    run docker exec "$PRIMARY_KIND-control-plane" ip route replace "$range" via "$BURST_NODE_IP"
  done
  for range in "$PRIMARY_PODS" "$PRIMARY_SERVICES"; do
    run docker exec "$BURST_KIND-control-plane" ip route replace "$range" via "$PRIMARY_NODE_IP"
  done
}

build_images() {
  local name
  for name in "${SERVICE_IMAGES[@]}"; do
    run docker build -f "services/$name/Dockerfile" -t "istio-burst/$name:$TAG" .
    run kind load docker-image "istio-burst/$name:$TAG" --name "$PRIMARY_KIND"
  done
  run kind load docker-image "istio-burst/worker:$TAG" --name "$BURST_KIND"
}

install_mesh() {
  mesh_install_primary "$CTX_PRIMARY"
  local discovery
  wait_for discovery '<east-west-gateway-cluster-ip>' 120 kubectl --context "$CTX_PRIMARY" \
    -n istio-system get service istio-eastwestgateway -o 'jsonpath={.spec.clusterIP}'
  # The kubeconfig's API server address (127.0.0.1:port) means nothing inside the primary's
  # pods: give istiod the burst node's address on the kind network.
  mesh_install_remote "$CTX_BURST" "$CTX_PRIMARY" "$discovery" "https://$BURST_NODE_IP:6443"
  mesh_install_prometheus "$CTX_PRIMARY"
}

# The frequency is the deployment's, kept in Redis (FREQUENCY only seeds an empty Redis): set it
# the way a page does, from inside a frontend pod.
set_load() {
  run kubectl --context "$CTX_PRIMARY" -n "$APP_NAMESPACE" exec deploy/frontend-deployment -- \
    python -m istio_burst.frontend.set_frequency "$1"
}

expect_burst_weight() {
  wait_until "$1" "$WAIT_SECONDS" burst_weight "$CTX_PRIMARY"
}

# A hash from a burst worker on the channel the page reads (redis-cli authenticates with the
# container's REDIS_PASSWORD, from Secret redis-auth).
expect_bursty_hash() {
  # shellcheck disable=SC2016 # $REDIS_PASSWORD expands in the container, not here
  local listen=(kubectl --context "$CTX_PRIMARY" -n "$APP_NAMESPACE" exec deploy/redis-cache
    -c redis -- sh -c 'REDISCLI_AUTH="$REDIS_PASSWORD" exec timeout "$0" redis-cli --raw SUBSCRIBE calculation'
    "$WAIT_SECONDS")
  printf '+ %s | grep -m1 -o %s\n' "$(quote_words "${listen[@]}")" "'bursty-[A-Za-z0-9+/=]*'"
  if dry_run; then return 0; fi
  local hash
  # grep stops at the first match; the listener's broken pipe is expected, not a failure.
  hash=$({ "${listen[@]}" 2>/dev/null || true; } | grep -m1 -o 'bursty-[A-Za-z0-9+/=]*' || true)
  [ -n "$hash" ] || die "no bursty- hash on the calculation channel in ${WAIT_SECONDS}s"
  say "a burst worker answered: $hash"
}

need docker kind kubectl istioctl
trap cleanup EXIT
say "1/6 kind clusters"
create_clusters
say "2/6 one network"
connect_clusters
say "3/6 images"
build_images
say "4/6 Istio primary-remote"
install_mesh
say "5/6 the app"
app_write_overlays "$WORK_DIR/deploy" "" "$TAG"
app_deploy "$CTX_PRIMARY" "$CTX_BURST" "$WORK_DIR/deploy"
say "6/6 load $LOAD req/s: the watcher should burst"
set_load "$LOAD"
expect_burst_weight 100
expect_bursty_hash
say "load off: the watcher should bring the traffic back to primary"
set_load 0
expect_burst_weight 0
say "end to end: OK"
