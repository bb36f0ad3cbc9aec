"""The Istio actuator against a cluster's API: the local kube-apiserver (harness.kube) with the
project's natural.yaml applied, or, opt-in, a real remote cluster with Istio and the project's
manifests applied, named by a kubeconfig context:

    ISTIO_BURST_K8S_CONTEXT=primary .venv/bin/pytest -m k8s tests/watcher/test_real_cluster.py

It changes the worker VirtualService's weights and puts them back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from harness.actuators import closing
from harness.kube import LocalKube
from harness.kube.front import VS_NAME, virtual_service
from istio_burst.core.contracts import Weights
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind
from istio_burst.watcher.actuators.istio import IstioActuator

REMOTE_CONTEXT = os.environ.get("ISTIO_BURST_K8S_CONTEXT", "")
REMOTE_NAMESPACE = os.environ.get("ISTIO_BURST_K8S_NAMESPACE", "default")

pytestmark = pytest.mark.k8s


@dataclass
class Cluster:
    namespace: str
    context: str = ""
    kubeconfig: str = ""


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The remote cluster if one is named, else the local API server with natural.yaml."""
    if REMOTE_CONTEXT:
        yield Cluster(REMOTE_NAMESPACE, context=REMOTE_CONTEXT)
        return
    kube: LocalKube = request.getfixturevalue("local_kube")
    namespace = "real-cluster"
    kube.kubectl("create", "namespace", namespace, check=False)  # there already: fine
    natural = virtual_service(namespace=namespace)  # the session's API server is shared
    kube.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(natural))
    yield Cluster(namespace, kubeconfig=str(kube.kubeconfig))


async def test_reads_patches_and_detects_a_stale_write(cluster: Cluster) -> None:
    actuator = IstioActuator(
        cluster.namespace,
        VS_NAME,
        context=cluster.context,
        kubeconfig=cluster.kubeconfig,
        timeout=10,
    )
    async with closing(actuator):
        original = await actuator.read()
        flipped = Weights(original.weights.burst, original.weights.primary)
        if flipped == original.weights:  # 50/50
            flipped = Weights(100, 0)
        try:
            await actuator.write(original, flipped)
            now = await actuator.read()
            assert now.weights == flipped
            with pytest.raises(ActuatorError) as raised:
                await actuator.write(original, original.weights)  # stale: read before the flip
            assert raised.value.kind is ActuatorErrorKind.CONFLICT
        finally:
            await actuator.write(await actuator.read(), original.weights)
        assert (await actuator.read()).weights == original.weights
