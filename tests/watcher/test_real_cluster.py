"""Opt-in: the Istio actuator against a real Kubernetes cluster with Istio and the project's
manifests applied. Runs only when ISTIO_BURST_K8S_CONTEXT names a kubeconfig context (this
machine has no cluster). It changes the worker VirtualService's weights and puts them back.

    ISTIO_BURST_K8S_CONTEXT=primary .venv/bin/pytest -m k8s tests/watcher
"""

from __future__ import annotations

import os

import pytest

from istio_burst.core.contracts import Weights
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind
from istio_burst.watcher.actuators.istio import IstioActuator

CONTEXT = os.environ.get("ISTIO_BURST_K8S_CONTEXT", "")
NAMESPACE = os.environ.get("ISTIO_BURST_K8S_NAMESPACE", "default")

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.skipif(
        not CONTEXT,
        reason="needs a real Kubernetes cluster with Istio: set ISTIO_BURST_K8S_CONTEXT to a "
        "kubeconfig context (no API server can run on this machine)",
    ),
]


async def test_reads_patches_and_detects_a_stale_write_on_a_real_cluster() -> None:
    actuator = IstioActuator(NAMESPACE, "worker-virtual-service", context=CONTEXT, timeout=10)
    try:
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
    finally:
        await actuator.close()
