# shellcheck shell=bash
# The mesh and the app, set up the same way on GKE (scripts/gke.sh) and on kind
# (scripts/kind-e2e.sh). Sourced after common.sh, from the repository root.
#
# Istio multicluster, primary-remote, one network:
# - primary: istiod (also serving the remote cluster: externalIstiod), the ingress gateway, an
#   east-west gateway that exposes istiod to the remote cluster, and Prometheus;
# - burst (remote): no istiod; its sidecars and its injection webhook use the primary's istiod
#   through that east-west gateway; the primary's istiod watches the burst API server through
#   the secret `istioctl create-remote-secret` makes.
# One network: the clusters' pods reach each other directly (GKE: one VPC plus a firewall rule;
# kind: routes between the nodes), so the worker traffic needs no gateway. Primary-remote keeps
# the original's shape (Istio on primary, "remote" on burst) and one place for the routing
# objects and the watcher's writes: the primary's API server.

MESH_ID=mesh1
NETWORK=network1 # = topology.istio.io/network in scripts/istio/eastwest-gateway.yaml
# Istio's clusterName of each cluster; the watcher's BURST_ERROR_QUERY names "burst".
PRIMARY_MESH_CLUSTER=primary
BURST_MESH_CLUSTER=burst
APP_NAMESPACE=default # = the namespace of k8s/overlays/* and istio-manifests/
ISTIO_RELEASE=${ISTIO_RELEASE:-1.30}
PROMETHEUS_MANIFEST=${PROMETHEUS_MANIFEST:-https://raw.githubusercontent.com/istio/istio/release-${ISTIO_RELEASE}/samples/addons/prometheus.yaml}
# services/<name>/Dockerfile builds the image istio-burst/<name>.
SERVICE_IMAGES=(worker frontend istiowatcher)
PRIMARY_DEPLOYMENTS=(redis-cache worker-deployment frontend-deployment istiowatcher-deployment)

# mesh_flags CLUSTER_NAME: the values every control plane and gateway of the mesh is given.
mesh_flags() {
  MESH_FLAGS=(
    --set "values.global.meshID=$MESH_ID"
    --set "values.global.multiCluster.clusterName=$1"
    --set "values.global.network=$NETWORK"
  )
}

ensure_namespace() {
  local context=$1 namespace=$2
  pipe kubectl --context "$context" create namespace "$namespace" --dry-run=client -o yaml \
    '|' kubectl --context "$context" apply -f -
}

# mesh_install_primary CONTEXT
mesh_install_primary() {
  local context=$1
  say "Istio control plane on the primary cluster ($context)"
  ensure_namespace "$context" istio-system
  run kubectl --context "$context" label namespace istio-system \
    "topology.istio.io/network=$NETWORK" --overwrite
  mesh_flags "$PRIMARY_MESH_CLUSTER"
  run istioctl install -y --context "$context" "${MESH_FLAGS[@]}" \
    --set values.global.externalIstiod=true
  say "east-west gateway, and istiod exposed through it"
  run istioctl install -y --context "$context" -f scripts/istio/eastwest-gateway.yaml \
    "${MESH_FLAGS[@]}"
  run kubectl --context "$context" apply -n istio-system -f scripts/istio/expose-istiod.yaml
}

# mesh_install_remote REMOTE_CONTEXT PRIMARY_CONTEXT DISCOVERY_ADDRESS [REMOTE_API_SERVER]
# DISCOVERY_ADDRESS: where the remote reaches the primary's east-west gateway.
# REMOTE_API_SERVER: the remote API server's URL as the primary's pods reach it, when that
# differs from the kubeconfig's (kind: the kubeconfig says 127.0.0.1).
mesh_install_remote() {
  local remote=$1 primary=$2 discovery=$3 server=${4:-}
  local server_flag=()
  [ -z "$server" ] || server_flag=(--server "$server")
  say "burst cluster ($remote) as a remote of the primary's istiod at $discovery"
  ensure_namespace "$remote" istio-system
  run kubectl --context "$remote" label namespace istio-system \
    "topology.istio.io/network=$NETWORK" --overwrite
  run kubectl --context "$remote" annotate namespace istio-system \
    "topology.istio.io/controlPlaneClusters=$PRIMARY_MESH_CLUSTER" --overwrite
  mesh_flags "$BURST_MESH_CLUSTER"
  run istioctl install -y --context "$remote" --set profile=remote \
    --set "values.istiodRemote.injectionPath=/inject/cluster/$BURST_MESH_CLUSTER/net/$NETWORK" \
    --set "values.global.remotePilotAddress=$discovery" \
    "${MESH_FLAGS[@]}"
  say "the primary's istiod gets access to the burst API server"
  pipe istioctl create-remote-secret --context "$remote" --name "$BURST_MESH_CLUSTER" \
    ${server_flag[@]+"${server_flag[@]}"} '|' kubectl apply -f - --context "$primary"
}

mesh_install_prometheus() {
  say "Prometheus (Istio's sample) on the primary cluster: the watcher reads it"
  run kubectl --context "$1" apply -f "$PROMETHEUS_MANIFEST"
}

# overlay_kustomization DEPLOY_DIR TARGET REGISTRY TAG: a kustomization that is
# k8s/overlays/TARGET with our images taken from REGISTRY (empty: the local names) at TAG.
overlay_kustomization() {
  local dir=$1 target=$2 registry=$3 tag=$4 name
  printf '%s\n' \
    "# Written by scripts/ (do not edit): k8s/overlays/$target with the images it built." \
    "apiVersion: kustomize.config.k8s.io/v1beta1" \
    "kind: Kustomization" \
    "resources:" \
    "  - $(relative_path "$(absolute_dir "$dir/$target")" "$REPO/k8s/overlays/$target")" \
    "images:"
  for name in "${SERVICE_IMAGES[@]}"; do
    printf '  - name: istio-burst/%s\n' "$name"
    [ -z "$registry" ] || printf '    newName: %s/%s\n' "$registry" "$name"
    printf '    newTag: "%s"\n' "$tag"
  done
}

# app_write_overlays DEPLOY_DIR REGISTRY TAG
app_write_overlays() {
  local dir=$1 registry=$2 tag=$3 target
  for target in primary burst; do
    write_file "$dir/$target/kustomization.yaml" \
      "$(overlay_kustomization "$dir" "$target" "$registry" "$tag")"
  done
}

# app_deploy PRIMARY_CONTEXT BURST_CONTEXT DEPLOY_DIR
app_deploy() {
  local primary=$1 burst=$2 dir=$3 context deployment
  say "sidecar injection in the app's namespace, both clusters"
  for context in "$primary" "$burst"; do
    run kubectl --context "$context" label namespace "$APP_NAMESPACE" \
      istio-injection=enabled --overwrite
  done
  say "the app: everything on primary, the bursty- worker on burst; then the routing"
  run kubectl --context "$primary" apply -k "$dir/primary"
  run kubectl --context "$burst" apply -k "$dir/burst"
  run kubectl --context "$primary" apply -k istio-manifests
  for deployment in "${PRIMARY_DEPLOYMENTS[@]}"; do
    run kubectl --context "$primary" -n "$APP_NAMESPACE" rollout status \
      "deployment/$deployment" --timeout 5m
  done
  run kubectl --context "$burst" -n "$APP_NAMESPACE" rollout status \
    deployment/worker-deployment --timeout 5m
}

# burst_weight CONTEXT: the weight worker-virtual-service gives the burst subset now.
burst_weight() {
  kubectl --context "$1" -n "$APP_NAMESPACE" get virtualservice worker-virtual-service \
    -o 'jsonpath={.spec.http[0].route[?(@.destination.subset=="burst")].weight}'
}
