"""The istiowatcher: reads the worker's request rate from Prometheus and shifts its traffic
between the primary and burst subsets (Istio VirtualService, or Redis for the local demo)."""
