"""Istio's own validation (istiod's webhook, registered with the real API server) against the
watcher's writes: every split it can write is admitted; a VirtualService Istio refuses is refused
at the API with Istio's words, and the watcher reports it as invalid."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.actuators import closing
from harness.istio.istiod import Istiod
from harness.kube import LocalKube
from harness.kube.front import JSON_PATCH, VS_API, KubeFront, virtual_service
from istio_burst.core.contracts import Weights
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind
from istio_burst.watcher.actuators.istio import IstioActuator
from tests.istio.clusters import applied, objects_on

WATCHER_ACCOUNT = ("default", "istiowatcher")
VIRTUAL_SERVICE = "worker-virtual-service"


@pytest.fixture(scope="module")
def primary_applied(mesh_kube: LocalKube, istiod: Istiod) -> Iterator[list[dict[str, Any]]]:
    """The primary cluster's objects, created through istiod's webhook; deleted afterwards."""
    objects = objects_on("primary")
    with applied(mesh_kube, objects):
        yield objects


@pytest.fixture
async def watcher_actuator(
    mesh_kube: LocalKube, primary_applied: list[dict[str, Any]], tmp_path: Path
) -> AsyncIterator[IstioActuator]:
    """The Istio actuator with the watcher's own ServiceAccount and Role from k8s/base."""
    kubeconfig = mesh_kube.service_account_kubeconfig(
        *WATCHER_ACCOUNT, tmp_path / "watcher.kubeconfig"
    )
    actuator = IstioActuator("default", VIRTUAL_SERVICE, kubeconfig=str(kubeconfig), timeout=10)
    async with closing(actuator):
        yield actuator
        await actuator.write(await actuator.read(), Weights(100, 0))


async def test_every_split_the_watcher_can_write_passes_istios_validation(
    watcher_actuator: IstioActuator,
) -> None:
    """Weights are whole numbers summing to 100: all 101 splits, in an order that also makes
    each write change both weights, each admitted by istiod and stored."""
    shares = list(range(101))
    random.Random(17).shuffle(shares)
    for burst in shares:
        seen = await watcher_actuator.read()
        desired = Weights(100 - burst, burst)
        if seen.weights == desired:
            continue
        await watcher_actuator.write(seen, desired)
        assert (await watcher_actuator.read()).weights == desired


def refused_route_patch() -> list[dict[str, Any]]:
    """A second HTTP route whose weights are all 0: the CRD schema allows it, Istio does not."""
    host = "worker-service.default.svc.cluster.local"
    return [
        {
            "op": "add",
            "path": "/spec/http/1",
            "value": {
                "match": [{"headers": {"x-canary": {"exact": "yes"}}}],
                "route": [
                    {"destination": {"host": host, "subset": "primary"}, "weight": 0},
                    {"destination": {"host": host, "subset": "burst"}, "weight": 0},
                ],
            },
        }
    ]


def refuse_all_zero(front: KubeFront) -> httpx.Response:
    """A patch leaving the route at 0/0, as the watcher's ServiceAccount, through `front`."""
    return httpx.patch(
        f"{front.url}{VS_API.format(ns=front.namespace)}/{VIRTUAL_SERVICE}",
        content=json.dumps([{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 0}]),
        headers={"Authorization": f"Bearer {front.token}", "Content-Type": JSON_PATCH},
        timeout=10,
    )


def test_the_watcher_tests_stand_in_refuses_all_weights_zero_exactly_as_istiod_does(
    mesh_kube: LocalKube, istiod: Istiod
) -> None:
    """tests/watcher's API front answers for Istio's webhook where istiod does not run: the
    same patch, refused by istiod itself and by the stand-in, gets the same answer."""
    front = KubeFront(mesh_kube).start()
    try:
        front.put(virtual_service(100, 0, namespace=front.namespace))
        front.istio_webhook_stand_in = False
        real = refuse_all_zero(front)
        with istiod.webhook_unregistered():
            front.istio_webhook_stand_in = True
            stand_in = refuse_all_zero(front)
        assert front.weights() == (100, 0), "nothing was stored"
    finally:
        front.stop()
    assert real.status_code == 400
    assert real.json()["message"] == (
        'admission webhook "validation.istio.io" denied the request: '
        "configuration is invalid: total destination weight = 0"
    )
    assert (stand_in.status_code, stand_in.json()) == (real.status_code, real.json())


async def test_a_virtual_service_istio_refuses_is_reported_invalid(
    mesh_kube: LocalKube, istiod: Istiod, watcher_actuator: IstioActuator
) -> None:
    """Stored while no webhook guarded the API (as during an install, before istiod is ready),
    a VirtualService with a second route at 0/0 makes istiod refuse every later write to it,
    the watcher's included: the watcher reports Istio's reason, as invalid."""
    with istiod.webhook_unregistered():
        mesh_kube.kubectl(
            "patch", "virtualservice", VIRTUAL_SERVICE, "--type=json",
            f"--patch={json.dumps(refused_route_patch())}",
        )  # fmt: skip
    try:
        seen = await watcher_actuator.read()
        with pytest.raises(ActuatorError) as refused:
            await watcher_actuator.write(seen, Weights(50, 50))
        assert refused.value.kind is ActuatorErrorKind.INVALID
        assert (
            'admission webhook "validation.istio.io" denied the request: '
            "configuration is invalid: total destination weight = 0" in refused.value.detail
        )
        assert (await watcher_actuator.read()).weights == seen.weights, "nothing was stored"
    finally:
        with istiod.webhook_unregistered():
            mesh_kube.kubectl(
                "patch", "virtualservice", VIRTUAL_SERVICE, "--type=json",
                '--patch=[{"op": "remove", "path": "/spec/http/1"}]',
            )  # fmt: skip
