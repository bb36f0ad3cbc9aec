"""Istio's own validation (istiod's webhook, registered with the real API server) against the
watcher's writes: every split it can write is admitted; a VirtualService Istio refuses is refused
at the API with Istio's words, and the watcher reports it as invalid."""

from __future__ import annotations

import json
import random
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.istio.istiod import Istiod
from harness.kube import LocalKube
from istio_burst.core.contracts import Weights
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind
from istio_burst.watcher.actuators.istio import IstioActuator
from tests.istio.clusters import applied, objects_on
from tests.watcher.fake_kube import TOKEN, FakeKubeAPI, virtual_service

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
    yield actuator
    await actuator.write(await actuator.read(), Weights(100, 0))
    await actuator.close()


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


def send_json_patch(server: str, patch: list[dict[str, Any]], **client: Any) -> httpx.Response:
    headers = {"Content-Type": "application/json-patch+json", "Accept": "application/json"}
    return httpx.patch(
        f"{server}/apis/networking.istio.io/v1/namespaces/default/virtualservices/"
        f"{VIRTUAL_SERVICE}",
        content=json.dumps(patch),
        headers={**headers, **client.pop("headers", {})},
        timeout=10,
        **client,
    )


def test_the_fake_api_refuses_all_weights_zero_exactly_as_istiod_does(
    mesh_kube: LocalKube, primary_applied: list[dict[str, Any]]
) -> None:
    """The same patch to the real API server (istiod's webhook) and to the tests' stand-in."""
    assert mesh_kube.pki is not None
    pki = mesh_kube.pki
    admin = ssl.create_default_context(cafile=str(pki.ca_cert))
    admin.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    real = send_json_patch(mesh_kube.server, refused_route_patch(), verify=admin)
    assert real.status_code == 400
    assert real.json()["message"] == (
        'admission webhook "validation.istio.io" denied the request: '
        "configuration is invalid: total destination weight = 0"
    )
    fake_kube = FakeKubeAPI()
    fake_kube.put(virtual_service(100, 0))
    fake_kube.start()
    try:
        fake = send_json_patch(
            fake_kube.url, refused_route_patch(), headers={"Authorization": f"Bearer {TOKEN}"}
        )
    finally:
        fake_kube.stop()
    assert (fake.status_code, fake.json()) == (real.status_code, real.json())


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
