#!/usr/bin/env bash
# String Hashr on Google Kubernetes Engine: two clusters, one Istio mesh, the app, and back.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
CALLER_DIR=$PWD
cd "$REPO"
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
# shellcheck source=lib/mesh.sh
source scripts/lib/mesh.sh

usage() {
  cat <<EOF
Usage: scripts/gke.sh [options] STEP...

The whole walk-through on GKE. Every command is printed before it runs; --dry-run prints them
all and runs none (and needs none of the tools).

Steps (run in the order given):
  clusters   create the GKE clusters: "$PRIMARY_GKE" (4 nodes, fixed: the on-premises side) and
             "$BURST_GKE" (1 node, autoscaling 1-5: the cloud), one VPC; fetch their credentials
  firewall   let the two clusters' pods reach each other (one mesh network, no gateway needed)
  images     build the three images (services/*/Dockerfile) and push them to Artifact Registry
  istio      Istio multicluster, primary-remote on one network: istiod and an east-west gateway
             on primary, burst as its remote (istioctl create-remote-secret), Prometheus
  overlays   write DEPLOY_DIR/{primary,burst}/kustomization.yaml: k8s/overlays/* with the
             pushed images (nothing else is touched; kubectl kustomize shows the result)
  deploy     overlays, then apply them to the clusters, then istio-manifests/
  up         clusters firewall images istio deploy
  status     pods on both clusters, the worker's weights, the page's address
  teardown   delete everything this script created (clusters, firewall rule, image repository)

Options (or the environment variables in brackets):
  --project ID      Google Cloud project [PROJECT; default: gcloud's configured project]
  --zone ZONE       zone of both clusters [ZONE; default: $ZONE]
  --tag TAG         image tag [TAG; default: the git commit, else "dev"]
  --deploy-dir DIR  where the image-pinning kustomizations go [DEPLOY_DIR; default: k8s/deploy]
  --dry-run         print every command, run none [DRY_RUN=1]
  -h, --help        this text
More settings by environment: MACHINE_TYPE ($MACHINE_TYPE), VPC_NETWORK ($VPC_NETWORK),
PRIMARY_GKE / BURST_GKE (cluster names), AR_REPOSITORY ($AR_REPOSITORY),
ISTIO_RELEASE ($ISTIO_RELEASE: Prometheus comes from that release's samples/addons).

Needs: gcloud (logged in, with the gke-gcloud-auth-plugin), kubectl, docker (with buildx for
--platform), and istioctl of Istio $ISTIO_RELEASE (curl -L https://istio.io/downloadIstio |
ISTIO_VERSION=$ISTIO_RELEASE.0 sh -, then put istio-$ISTIO_RELEASE.0/bin on PATH).

Example: scripts/gke.sh --project my-project --dry-run up
EOF
}

PROJECT=${PROJECT:-}
ZONE=${ZONE:-us-central1-a}
TAG=${TAG:-}
DEPLOY_DIR=${DEPLOY_DIR:-}
MACHINE_TYPE=${MACHINE_TYPE:-e2-standard-4}
VPC_NETWORK=${VPC_NETWORK:-default}
PRIMARY_GKE=${PRIMARY_GKE:-primary}
BURST_GKE=${BURST_GKE:-burst}
AR_REPOSITORY=${AR_REPOSITORY:-istio-burst}
FIREWALL_RULE=istio-burst-pods

steps=()
while [ $# -gt 0 ]; do
  case $1 in
    --project) PROJECT=${2:?--project needs a value}; shift 2 ;;
    --zone) ZONE=${2:?--zone needs a value}; shift 2 ;;
    --tag) TAG=${2:?--tag needs a value}; shift 2 ;;
    --deploy-dir) DEPLOY_DIR=${2:?--deploy-dir needs a value}; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) steps+=("$1"); shift ;;
  esac
done
[ ${#steps[@]} -gt 0 ] || { usage >&2; exit 2; }

case $DEPLOY_DIR in
  '') DEPLOY_DIR=k8s/deploy ;; # in the repository (ignored by git)
  /*) ;;
  *) DEPLOY_DIR=$CALLER_DIR/$DEPLOY_DIR ;;
esac

if [ -z "$PROJECT" ]; then
  if dry_run; then
    PROJECT=my-project
  else
    need gcloud
    PROJECT=$(gcloud config get-value project 2>/dev/null || true)
    [ -n "$PROJECT" ] || die "no project: pass --project ID or set PROJECT"
  fi
fi
if [ -z "$TAG" ]; then
  TAG=$(git rev-parse --short HEAD 2>/dev/null || echo dev)
fi
REGION=${ZONE%-*}
REGISTRY=$REGION-docker.pkg.dev/$PROJECT/$AR_REPOSITORY
CTX_PRIMARY=gke_${PROJECT}_${ZONE}_${PRIMARY_GKE}
CTX_BURST=gke_${PROJECT}_${ZONE}_${BURST_GKE}
WHERE=(--project "$PROJECT" --zone "$ZONE")

step_clusters() {
  need gcloud
  say "the clusters: $PRIMARY_GKE (on-premises stand-in) and $BURST_GKE (the cloud)"
  run gcloud services enable container.googleapis.com artifactregistry.googleapis.com \
    --project "$PROJECT"
  # VPC-native (alias IPs), so that pod addresses are routable in the VPC: one mesh network.
  run gcloud container clusters create "$PRIMARY_GKE" "${WHERE[@]}" \
    --num-nodes 4 --machine-type "$MACHINE_TYPE" --network "$VPC_NETWORK" \
    --enable-ip-alias --release-channel regular
  run gcloud container clusters create "$BURST_GKE" "${WHERE[@]}" \
    --num-nodes 1 --enable-autoscaling --min-nodes 1 --max-nodes 5 \
    --machine-type "$MACHINE_TYPE" --network "$VPC_NETWORK" \
    --enable-ip-alias --release-channel regular
  run gcloud container clusters get-credentials "$PRIMARY_GKE" "${WHERE[@]}"
  run gcloud container clusters get-credentials "$BURST_GKE" "${WHERE[@]}"
}

step_firewall() {
  need gcloud
  say "pods of either cluster may reach pods of the other"
  local primary_pods burst_pods node_tags tags
  capture primary_pods '<primary-pod-range>' gcloud container clusters describe "$PRIMARY_GKE" \
    "${WHERE[@]}" --format 'value(clusterIpv4Cidr)'
  capture burst_pods '<burst-pod-range>' gcloud container clusters describe "$BURST_GKE" \
    "${WHERE[@]}" --format 'value(clusterIpv4Cidr)'
  capture node_tags '<node-tags>' gcloud compute instances list --project "$PROJECT" \
    --filter "name~^gke-($PRIMARY_GKE|$BURST_GKE)-" --format 'value(tags.items[0])'
  tags=$(printf '%s\n' "$node_tags" | sort -u | paste -sd, -)
  run gcloud compute firewall-rules create "$FIREWALL_RULE" --project "$PROJECT" \
    --network "$VPC_NETWORK" --direction INGRESS --priority 900 \
    --allow tcp,udp,icmp,esp,ah,sctp \
    --source-ranges "$primary_pods,$burst_pods" --target-tags "$tags"
}

step_images() {
  need gcloud docker
  say "images to $REGISTRY, tag $TAG"
  if dry_run || ! gcloud artifacts repositories describe "$AR_REPOSITORY" --project "$PROJECT" \
    --location "$REGION" >/dev/null 2>&1; then
    run gcloud artifacts repositories create "$AR_REPOSITORY" --project "$PROJECT" \
      --location "$REGION" --repository-format docker
  fi
  run gcloud auth configure-docker "$REGION-docker.pkg.dev" --quiet
  local name
  for name in "${SERVICE_IMAGES[@]}"; do
    # GKE's nodes are amd64, whatever this machine is.
    run docker build --platform linux/amd64 -f "services/$name/Dockerfile" \
      -t "$REGISTRY/$name:$TAG" .
    run docker push "$REGISTRY/$name:$TAG"
  done
}

step_istio() {
  need istioctl kubectl
  mesh_install_primary "$CTX_PRIMARY"
  local discovery
  wait_for discovery '<east-west-gateway-ip>' 600 kubectl --context "$CTX_PRIMARY" \
    -n istio-system get service istio-eastwestgateway \
    -o 'jsonpath={.status.loadBalancer.ingress[0].ip}'
  mesh_install_remote "$CTX_BURST" "$CTX_PRIMARY" "$discovery"
  mesh_install_prometheus "$CTX_PRIMARY"
}

step_overlays() {
  app_write_overlays "$DEPLOY_DIR" "$REGISTRY" "$TAG"
}

step_deploy() {
  need kubectl
  step_overlays
  app_deploy "$CTX_PRIMARY" "$CTX_BURST" "$DEPLOY_DIR"
  step_status
}

step_status() {
  need kubectl
  run kubectl --context "$CTX_PRIMARY" -n "$APP_NAMESPACE" get pods -L cluster-type
  run kubectl --context "$CTX_BURST" -n "$APP_NAMESPACE" get pods -L cluster-type
  run kubectl --context "$CTX_PRIMARY" -n "$APP_NAMESPACE" get virtualservice \
    worker-virtual-service \
    -o 'jsonpath={range .spec.http[0].route[*]}{.destination.subset}={.weight} {end}{"\n"}'
  local address
  wait_for address '<ingress-ip>' 600 kubectl --context "$CTX_PRIMARY" -n istio-system \
    get service istio-ingressgateway -o 'jsonpath={.status.loadBalancer.ingress[0].ip}'
  say "the page: http://$address/ (Host: the name in k8s/frontend-host/; point its DNS here)"
}

step_teardown() {
  need gcloud
  say "teardown (what is already gone is skipped)"
  # Istio's gateways own load balancers outside the clusters: remove them first.
  run istioctl uninstall -y --purge --context "$CTX_PRIMARY" || say "istio on primary: skipped"
  run gcloud container clusters delete "$PRIMARY_GKE" "$BURST_GKE" "${WHERE[@]}" --quiet \
    || say "clusters: skipped"
  run gcloud compute firewall-rules delete "$FIREWALL_RULE" --project "$PROJECT" --quiet \
    || say "firewall rule: skipped"
  run gcloud artifacts repositories delete "$AR_REPOSITORY" --project "$PROJECT" \
    --location "$REGION" --quiet || say "image repository: skipped"
}

for step in "${steps[@]}"; do
  case $step in
    clusters | firewall | images | istio | overlays | deploy | status | teardown | up) ;;
    *) die "unknown step '$step' (see --help)" ;;
  esac
done
for step in "${steps[@]}"; do
  if [ "$step" = up ]; then
    step_clusters
    step_firewall
    step_images
    step_istio
    step_deploy
  else
    "step_$step"
  fi
done
