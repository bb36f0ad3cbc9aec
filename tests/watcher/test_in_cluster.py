"""The `istio-burst watcher` process as it runs in the cluster, against a real kube-apiserver.

Its identity is the manifest's own ServiceAccount: a token from the TokenRequest API, authorized
by nothing but the manifest's Role and RoleBinding (k8s/base/watcher/). It talks straight to the
API server (no proxy in between) about the VirtualService that istio-manifests/natural.yaml
creates, and reads its load from a real Prometheus scraping an exporter the test drives.
The API server is this module's own, so one test can stop and restart it for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.actuators import closing
from harness.exporter import LoadExporter
from harness.kube import LocalKube
from harness.kube.front import NATURAL, VS_API, VS_NAME, WATCHER_RBAC, weights_of
from harness.kube.watch import wait_weights
from harness.metrics import metric_value
from harness.processes import ManagedProcess
from harness.prometheus import PrometheusServer
from harness.watcher import start_watcher, wait_status
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind
from istio_burst.watcher.actuators.istio import IstioActuator

NAMESPACE = "default"  # where the manifests put everything


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKube]:
    kube = LocalKube(tmp_path_factory.mktemp("in-cluster")).start()
    try:
        kube.kubectl(
            "apply", "--server-side", "-n", NAMESPACE,
            "-f", str(WATCHER_RBAC / "serviceaccount.yaml"),
            "-f", str(WATCHER_RBAC / "role.yaml"),
        )  # fmt: skip
        yield kube
    finally:
        kube.stop()


@pytest.fixture
def natural(cluster: LocalKube) -> LocalKube:
    """The worker VirtualService as the manifests create it: 100/0 (re-created for each test)."""
    cluster.kubectl("delete", "-f", str(NATURAL), "--ignore-not-found")
    cluster.kubectl("apply", "--server-side", "-f", str(NATURAL))
    return cluster


def weights(kube: LocalKube) -> tuple[int, int] | None:
    with kube.admin_client() as api:
        answer = api.get(f"{VS_API.format(ns=NAMESPACE)}/{VS_NAME}")
    return weights_of(answer.json()) if answer.status_code == 200 else None


def in_cluster_watcher(
    tmp_path: Path, kube: LocalKube, prometheus: PrometheusServer, **env: str
) -> tuple[ManagedProcess, str]:
    kubeconfig = kube.service_account_kubeconfig(
        NAMESPACE, "istiowatcher", tmp_path / "watcher-kubeconfig"
    )
    return start_watcher(
        tmp_path,
        prometheus.url,
        ACTUATOR="istio",
        KUBECONFIG=str(kubeconfig),
        NAMESPACE=NAMESPACE,
        PUBLISH_STATE="false",
        MAX_BACKOFF="1",
        **env,
    )


@pytest.fixture
def bursting(
    tmp_path: Path, natural: LocalKube, load: LoadExporter, prometheus: PrometheusServer
) -> Iterator[tuple[ManagedProcess, str]]:
    """The watcher at 30 req/s, once it has moved the VirtualService to burst (0/100)."""
    load.set_rate(30)
    proc, url = in_cluster_watcher(tmp_path, natural, prometheus)
    try:
        wait_weights(natural, NAMESPACE, (0, 100), process=proc)
        yield proc, url
    finally:
        proc.stop()


def test_it_bursts_and_comes_back_as_its_service_account(
    tmp_path: Path, natural: LocalKube, load: LoadExporter, prometheus: PrometheusServer
) -> None:
    load.set_rate(3)
    proc, url = in_cluster_watcher(tmp_path, natural, prometheus)
    try:
        wait_status(proc, url, lambda s: s["ready"])
        assert weights(natural) == (100, 0)
        load.set_rate(30)
        wait_weights(natural, NAMESPACE, (0, 100), process=proc)
        load.set_rate(3)
        wait_weights(natural, NAMESPACE, (100, 0), timeout=60, process=proc)
        assert metric_value(url, "hashr_watcher_write_errors_total", kind="forbidden") == 0
    finally:
        proc.stop()


def test_an_edit_by_kubectl_is_undone_and_other_fields_are_kept(
    natural: LocalKube, bursting: tuple[ManagedProcess, str]
) -> None:
    proc, _ = bursting
    natural.kubectl(
        "patch", "virtualservice", VS_NAME, "-n", NAMESPACE, "--type=json", "-p",
        '[{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 50},'
        ' {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 50},'
        ' {"op": "add", "path": "/spec/http/0/timeout", "value": "5s"}]',
    )  # fmt: skip
    wait_weights(natural, NAMESPACE, (0, 100), process=proc)
    with natural.admin_client() as api:
        vs = api.get(f"{VS_API.format(ns=NAMESPACE)}/{VS_NAME}").json()
    assert vs["spec"]["http"][0]["timeout"] == "5s", "only the weights were written"


def test_a_deleted_virtual_service_is_reported_and_picked_up_when_it_is_back(
    natural: LocalKube, bursting: tuple[ManagedProcess, str]
) -> None:
    proc, url = bursting
    natural.kubectl("delete", "-f", str(NATURAL))
    wait_status(proc, url, lambda s: s["write_failures"] >= 1)
    assert proc.alive()
    assert metric_value(url, "hashr_watcher_write_errors_total", kind="not_found") >= 1
    natural.kubectl("apply", "--server-side", "-f", str(NATURAL))  # back at 100/0
    wait_weights(natural, NAMESPACE, (0, 100), process=proc)
    wait_status(proc, url, lambda s: s["ready"])


@pytest.mark.parametrize(
    ("namespace", "name"),
    [("elsewhere", VS_NAME), (NAMESPACE, "someone-elses-virtual-service")],
    ids=["another-namespace", "another-virtual-service"],
)
async def test_it_is_refused_anything_but_its_own_virtual_service(
    tmp_path: Path, cluster: LocalKube, namespace: str, name: str
) -> None:
    cluster.kubectl("create", "namespace", namespace, check=False)  # there already: fine
    kubeconfig = cluster.service_account_kubeconfig(
        NAMESPACE, "istiowatcher", tmp_path / "kubeconfig"
    )
    actuator = IstioActuator(namespace, name, kubeconfig=str(kubeconfig), timeout=10)
    async with closing(actuator):
        with pytest.raises(ActuatorError) as raised:
            await actuator.read()
    assert raised.value.kind is ActuatorErrorKind.FORBIDDEN
    assert "HTTP 403" in raised.value.detail
    assert "system:serviceaccount:default:istiowatcher" in raised.value.detail


@pytest.mark.parametrize(
    "path",
    [
        "/apis/networking.istio.io/v1/namespaces/default/destinationrules/worker-destination-rule",
        "/api/v1/namespaces/default/secrets",
        "/api/v1/namespaces/default/pods",
    ],
)
def test_its_token_opens_no_other_kind(tmp_path: Path, cluster: LocalKube, path: str) -> None:
    token = cluster.service_account_token(NAMESPACE, "istiowatcher")
    answer = httpx.get(
        cluster.server + path,
        headers={"Authorization": f"Bearer {token}"},
        verify=cluster.tls(),
        timeout=10,
    )
    assert answer.status_code == 403, answer.text
    assert answer.json()["reason"] == "Forbidden"


def test_it_holds_while_the_api_server_is_down_and_resumes_by_itself(
    natural: LocalKube, load: LoadExporter, bursting: tuple[ManagedProcess, str]
) -> None:
    proc, url = bursting
    natural.stop_apiserver()  # the real process, killed: connections are refused
    load.set_rate(3)  # it would now go back to primary, if it could
    down = wait_status(proc, url, lambda s: not s["ready"], timeout=60)
    assert (
        "failed calls to virtualservice default/worker-virtual-service"
        in (down["not_ready_reason"])
    )
    # Connection refused, named as such (urllib3 files it under its connect timeouts).
    assert metric_value(url, "hashr_watcher_write_errors_total", kind="unreachable") >= 1
    assert metric_value(url, "hashr_watcher_write_errors_total", kind="timeout") == 0
    assert httpx.get(url + "/livez", timeout=5).status_code == 200, "alive while it waits"
    natural.start_apiserver()
    wait_weights(natural, NAMESPACE, (100, 0), timeout=60, process=proc)
    wait_status(proc, url, lambda s: s["ready"], timeout=30)
