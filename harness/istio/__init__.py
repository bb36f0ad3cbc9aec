"""Istio's own control plane (istiod, istioctl, built from Istio's Go module) and upstream Envoy,
against the local Kubernetes API."""
