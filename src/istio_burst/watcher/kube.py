"""The Kubernetes API client the watcher's Kubernetes parts share (actuator, Events, Lease)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

try:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
except ModuleNotFoundError as missing:  # the client is the `istio` extra, not a core dependency
    raise ModuleNotFoundError(
        "ACTUATOR=istio needs the Kubernetes client: pip install 'istio-burst[istio]'"
    ) from missing

from istio_burst.core.contracts import ActuatorErrorKind
from istio_burst.watcher.actuators import ActuatorError

__all__ = ["ApiException", "api_client", "client", "micro_time"]


def api_client(context: str, kubeconfig: str) -> Any:
    """An ApiClient from in-cluster credentials, else the kubeconfig (KUBE_CONTEXT)."""
    configuration = client.Configuration()
    loaders: Any = config  # untyped module
    in_cluster = not (context or kubeconfig) and os.environ.get("KUBERNETES_SERVICE_HOST")
    try:
        if in_cluster:
            loaders.load_incluster_config(client_configuration=configuration)
        else:
            loaders.load_kube_config(
                config_file=kubeconfig or None,
                context=context or None,
                client_configuration=configuration,
            )
    except Exception as exc:
        where = (
            "in-cluster service account"
            if in_cluster
            else f"kubeconfig {kubeconfig or '~/.kube/config'}"
        )
        if context:
            where += f" context {context}"
        raise ActuatorError(
            ActuatorErrorKind.CONFIG, f"no usable Kubernetes credentials ({where}): {exc}"
        ) from exc
    configuration.retries = False  # one attempt per call: the callers do the retrying
    return client.ApiClient(configuration)


def micro_time(unix: float) -> str:
    """A Kubernetes MicroTime (RFC 3339, always six fractional digits, UTC)."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
