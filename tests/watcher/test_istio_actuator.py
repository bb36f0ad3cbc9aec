"""The Istio actuator against a fake Kubernetes API server.

No Kubernetes API server can run on this machine (no container runtime, no kind, k3s or
etcd), so `fake_kube.FakeKubeAPI` answers the exact REST calls the `kubernetes` client makes
for the VirtualService, with Kubernetes' Status errors and resourceVersions, and validates every
object written against Istio 1.30's VirtualService schema. The watcher's rounds run in-process
with a scripted Prometheus and a fake clock (fixtures `kube`, `prom`, `make_watcher` in
conftest.py); one test runs the real `istio-burst watcher` process against the fake. The
real-cluster check is in test_real_cluster.py (opt-in, k8s mark).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from harness.watcher import start_watcher, wait_status
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind
from istio_burst.watcher.actuators.istio import VERBS, IstioActuator
from istio_burst.watcher.loop import CONFLICT_RETRIES
from tests.watcher.fake_http import ScriptedServer
from tests.watcher.fake_kube import JSON_PATCH, TOKEN, FakeKubeAPI, Obj, virtual_service
from tests.watcher.rounds import load, next_round

VS_PATH = "/apis/networking.istio.io/v1/namespaces/default/virtualservices/worker-virtual-service"


def metric_value_in_process(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def without_weights(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"].pop("resourceVersion", None)
    for entry in out["spec"]["http"][0]["route"]:
        entry.pop("weight", None)
    return out


def test_the_watcher_needs_exactly_get_and_patch() -> None:
    assert VERBS == ("get", "patch")


async def test_bursting_patches_only_the_two_weights_with_tests_of_what_was_read(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any
) -> None:
    before = kube.get()
    load(prom, 30)
    watcher = make_watcher()
    await next_round(watcher)

    assert kube.weights() == (0, 100)
    get, patch = kube.requests
    assert (get.method, get.path, get.accept) == ("GET", VS_PATH, "application/json")
    assert patch.path.startswith(VS_PATH + "?") and "fieldManager=istio-burst-watcher" in patch.path
    assert patch.content_type == JSON_PATCH
    ops = patch.body
    assert [op["op"] for op in ops] == ["test", "test", "add", "add"]
    assert {op["path"] for op in ops if op["op"] == "add"} == {
        "/spec/http/0/route/0/weight",
        "/spec/http/0/route/1/weight",
    }
    after = kube.get()
    assert without_weights(after) == without_weights(before), "nothing else was touched"
    assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    assert len(kube.written) == 1  # and it passed Istio's schema (kube fixture checks)
    assert watcher.state.weights == {"primary": 0, "burst": 100}
    assert watcher.state.last_change is not None


async def test_no_write_when_the_weights_already_match(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any
) -> None:
    watcher = make_watcher()
    load(prom, 3)
    await next_round(watcher)
    load(prom, 12)
    await next_round(watcher)
    kube.edit(lambda vs: set_weights(vs, 0, 100))
    load(prom, 40)
    await next_round(watcher)
    assert kube.patches() == []
    assert [r.method for r in kube.requests] == ["GET", "GET", "GET"]


def set_weights(vs: Obj, primary: int, burst: int) -> None:
    route = vs["spec"]["http"][0]["route"]
    route[0]["weight"], route[1]["weight"] = primary, burst


async def test_a_concurrent_edit_between_read_and_write_is_not_lost(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any
) -> None:
    def someone_else(api: FakeKubeAPI) -> None:
        def change(vs: Obj) -> None:
            set_weights(vs, 50, 50)
            vs["spec"]["http"][0]["timeout"] = "5s"
            vs["metadata"]["labels"]["edited-by"] = "operator"

        api.edit(change)

    kube.before_patch = someone_else
    load(prom, 30)
    watcher = make_watcher()
    await next_round(watcher)

    methods = [r.method for r in kube.requests]
    # The 422 does not say why: the watcher looks (GET), sees the change, reads and decides again.
    assert methods == ["GET", "PATCH", "GET", "GET", "PATCH"], "conflict: decide again at once"
    assert watcher.write_failures == 0 and watcher.retry_at == 0, "no back-off"
    final = kube.get()
    assert kube.weights() == (0, 100)
    assert final["spec"]["http"][0]["timeout"] == "5s"
    assert final["metadata"]["labels"]["edited-by"] == "operator"
    second_tests = [op for op in kube.requests[4].body if op["op"] == "test"]
    assert {op["value"]["weight"] for op in second_tests} == {50}, "tests what it re-read"


async def test_a_concurrent_edit_that_changes_the_decision_is_kept(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any
) -> None:
    # Overflow: 20 req/s asks for 10 % to burst; meanwhile an operator sets 50/50 by hand.
    # Re-read, at 50/50 primary gets 10 req/s (within capacity, not low enough to step back):
    # the watcher holds and the operator's 50/50 stays.
    kube.before_patch = lambda api: api.edit(lambda vs: set_weights(vs, 50, 50))
    load(prom, 20)
    watcher = make_watcher(mode="overflow", primary_capacity=15, step=10)
    await next_round(watcher)
    assert [r.method for r in kube.requests] == ["GET", "PATCH", "GET", "GET"]
    assert kube.weights() == (50, 50)
    assert watcher.state.weights == {"primary": 50, "burst": 50}


async def test_409_conflict_rereads_and_writes_in_the_same_round(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any
) -> None:
    kube.fail.append(("PATCH", 409))
    load(prom, 30)
    watcher = make_watcher()
    await next_round(watcher)
    assert [r.method for r in kube.requests] == ["GET", "PATCH", "GET", "PATCH"]
    assert kube.weights() == (0, 100)
    assert watcher.write_failures == 0


def test_a_failed_test_op_gets_kube_apiservers_generic_422(
    kube: FakeKubeAPI, tmp_path: Path
) -> None:
    """The stand-in answers as kube-apiserver does: the patch library's text is not in it."""
    stale = [{"op": "test", "path": "/spec/http/0/route/0/weight", "value": 50}]
    response = httpx.patch(
        kube.url + VS_PATH,
        content=orjson.dumps(stale),
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": JSON_PATCH,
            "Accept": "application/json",
        },
        timeout=5,
    )
    assert response.status_code == 422
    body = response.json()
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the server rejected our request due to an error in our request",
        "reason": "Invalid",
        "details": {},
        "code": 422,
    }
    assert kube.failed_patches and "testing value" in kube.failed_patches[0]


def send_patch(kube: FakeKubeAPI, operations: list[dict[str, Any]]) -> httpx.Response:
    return httpx.patch(
        kube.url + VS_PATH,
        content=orjson.dumps(operations),
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": JSON_PATCH,
            "Accept": "application/json",
        },
        timeout=5,
    )


def test_rejected_writes_get_the_real_servers_answers() -> None:
    """Istio's webhook refuses every weight at 0 (400, its own words); the API server's schema
    check refuses a wrong type (422 Invalid, naming the object and the field)."""
    kube = FakeKubeAPI()
    kube.put(virtual_service(100, 0))
    kube.start()
    try:
        both_zero = send_patch(
            kube, [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 0}]
        )
        assert both_zero.status_code == 400
        body = both_zero.json()
        assert body["message"] == (
            'admission webhook "validation.istio.io" denied the request: '
            "configuration is invalid: total destination weight = 0"
        )
        assert (body.get("reason"), body["code"], body["status"]) == (None, 400, "Failure")

        wrong_type = send_patch(
            kube, [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": "50"}]
        )
        assert wrong_type.status_code == 422
        body = wrong_type.json()
        assert body["reason"] == "Invalid"
        assert body["message"].startswith(
            'VirtualService.networking.istio.io "worker-virtual-service" is invalid: '
            "spec.http[0].route[0].weight: "
        )
        assert body["details"]["causes"][0]["field"] == "spec.http[0].route[0].weight"
        assert kube.weights() == (100, 0), "nothing was stored"
    finally:
        kube.stop()


async def test_an_edit_racing_the_write_is_decided_again_without_a_back_off(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any
) -> None:
    # Only the weights change under the watcher (someone sets 60/40 between its read and write).
    kube.before_patch = lambda api: api.edit(lambda vs: set_weights(vs, 60, 40))
    load(prom, 30)
    watcher = make_watcher()
    invalid_before = metric_value_in_process("hashr_watcher_write_errors_total", kind="invalid")
    await next_round(watcher)
    assert kube.weights() == (0, 100), "written in the same round, over what it re-read"
    assert watcher.write_failures == 0
    assert watcher.not_ready_reason() == ""
    invalid = metric_value_in_process("hashr_watcher_write_errors_total", kind="invalid")
    assert invalid == invalid_before, "a race is no invalid write"

    # And the next round is not held back: a new edit is answered at once, not after a wait.
    kube.edit(lambda vs: set_weights(vs, 100, 0))
    calls = len(kube.requests)
    await next_round(watcher, seconds=0.1)
    assert len(kube.requests) > calls
    assert kube.weights() == (0, 100)


async def test_conflicts_in_every_attempt_end_the_round_as_one_failure(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any
) -> None:
    kube.fail.extend([("PATCH", 409)] * CONFLICT_RETRIES)
    load(prom, 30)
    watcher = make_watcher()
    await next_round(watcher)
    assert [r.method for r in kube.requests] == ["GET", "PATCH"] * CONFLICT_RETRIES
    assert kube.weights() == (100, 0)
    assert watcher.write_failures == 1, "the round failed once, not once per attempt"
    calls = len(kube.requests)
    await next_round(watcher, seconds=0.1)  # backing off: no call
    assert len(kube.requests) == calls
    await next_round(watcher)
    assert kube.weights() == (0, 100)


@pytest.mark.parametrize(
    ("method", "status", "kind", "words"),
    [
        ("GET", 404, ActuatorErrorKind.NOT_FOUND, 'virtualservices.networking.istio.io "worker'),
        ("GET", 403, ActuatorErrorKind.FORBIDDEN, "cannot patch resource"),
        ("PATCH", 403, ActuatorErrorKind.FORBIDDEN, "Forbidden"),
        ("GET", 500, ActuatorErrorKind.SERVER_ERROR, "etcdserver"),
        ("PATCH", 503, ActuatorErrorKind.SERVER_ERROR, "ServiceUnavailable"),
        # A 422 with nothing changed since the read: a write the server refuses, not a race.
        ("PATCH", 422, ActuatorErrorKind.INVALID, "rejected our request"),
    ],
)
async def test_api_errors_log_one_clear_line_hold_and_back_off(
    kube: FakeKubeAPI,
    prom: ScriptedServer,
    make_watcher: Any,
    caplog: pytest.LogCaptureFixture,
    *,
    method: str,
    status: int,
    kind: ActuatorErrorKind,
    words: str,
) -> None:
    kube.fail.append((method, status))
    load(prom, 30)
    watcher = make_watcher()
    before = kube.get()
    with caplog.at_level(logging.WARNING, logger="istio_burst.watcher.loop"):
        await next_round(watcher)
    assert kube.get() == before, "nothing half written"
    [line] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    text = line.getMessage()
    assert "virtualservice default/worker-virtual-service" in text
    assert f"({kind})" in text and f"HTTP {status}" in text and words in text
    assert "Traceback" not in text

    requests_so_far = len(kube.requests)
    await next_round(watcher, seconds=0.1)  # inside the back-off: no call at all
    assert len(kube.requests) == requests_so_far
    await next_round(watcher)  # after it: retried, and this time it works
    assert kube.weights() == (0, 100)
    assert watcher.write_failures == 0


async def test_repeated_failures_make_it_not_ready_and_it_recovers(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any
) -> None:
    kube.fail.extend([("GET", 503)] * 3)
    load(prom, 3)
    watcher = make_watcher()
    for _ in range(3):
        await next_round(watcher)
    assert "3 failed calls to virtualservice default/worker-virtual-service" in (
        watcher.not_ready_reason()
    )
    assert watcher.state.ready is False
    await next_round(watcher)
    assert watcher.not_ready_reason() == ""


async def test_a_hanging_api_server_times_out(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any, caplog: pytest.LogCaptureFixture
) -> None:
    kube.delay = 1.5
    load(prom, 30)
    watcher = make_watcher(write_timeout=0.3)
    with caplog.at_level(logging.WARNING, logger="istio_burst.watcher.loop"):
        await next_round(watcher)
    assert watcher.write_failures == 1
    assert "read failed (timeout)" in caplog.text
    kube.delay = 0
    await next_round(watcher)
    assert kube.weights() == (0, 100)


async def test_a_virtual_service_without_the_subsets_is_refused_without_writing(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any, caplog: pytest.LogCaptureFixture
) -> None:
    vs = virtual_service()
    vs["spec"]["http"][0]["route"] = vs["spec"]["http"][0]["route"][:1]
    kube.put(vs)
    load(prom, 30)
    watcher = make_watcher()
    with caplog.at_level(logging.WARNING):
        await next_round(watcher)
    assert kube.patches() == []
    assert "no HTTP route has destinations with subsets primary and burst" in caplog.text


async def test_wrong_credentials_are_forbidden_not_a_crash(
    kube: FakeKubeAPI, prom: ScriptedServer, tmp_path: Path
) -> None:
    actuator = IstioActuator(
        "default",
        "worker-virtual-service",
        kubeconfig=str(kube.kubeconfig(tmp_path / "bad", token="stolen")),
    )
    try:
        with pytest.raises(ActuatorError) as raised:
            await actuator.read()
    finally:
        await actuator.close()
    assert raised.value.kind is ActuatorErrorKind.FORBIDDEN
    assert "HTTP 401" in raised.value.detail


async def test_missing_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    actuator = IstioActuator("default", "vs", kubeconfig=str(tmp_path / "nope"))
    with pytest.raises(ActuatorError) as raised:
        await actuator.read()
    assert raised.value.kind is ActuatorErrorKind.CONFIG


async def test_weights_that_do_not_sum_to_100_are_read_relative_and_rewritten(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any
) -> None:
    kube.edit(lambda vs: set_weights(vs, 30, 10))
    load(prom, 12)  # between the thresholds: hold what is there (75/25), in canonical form
    watcher = make_watcher()
    await next_round(watcher)
    assert kube.weights() == (75, 25)


async def test_a_missing_weight_counts_as_0_and_is_added(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any
) -> None:
    kube.edit(lambda vs: vs["spec"]["http"][0]["route"][1].pop("weight"))
    load(prom, 30)
    watcher = make_watcher()
    await next_round(watcher)
    assert kube.weights() == (0, 100)


async def test_dry_run_writes_nothing_and_reports_what_it_would_do(
    kube: FakeKubeAPI, prom: ScriptedServer, make_watcher: Any, caplog: pytest.LogCaptureFixture
) -> None:
    load(prom, 30)
    watcher = make_watcher(dry_run=True)
    with caplog.at_level(logging.INFO):
        await next_round(watcher)
        await next_round(watcher)
    assert kube.patches() == []
    assert kube.weights() == (100, 0)
    assert watcher.state.weights == {"primary": 0, "burst": 100}
    assert watcher.state.dry_run is True
    assert caplog.text.count("dry run: would set") == 1


def test_the_real_process_shifts_the_virtual_service(
    kube: FakeKubeAPI, prom: ScriptedServer, tmp_path: Path
) -> None:
    load(prom, 3)
    proc, url = start_watcher(
        tmp_path,
        prom.url,
        **kube.watcher_env(tmp_path),
        PUBLISH_STATE="false",
    )
    try:
        wait_status(proc, url, lambda s: s["ready"])
        load(prom, 30)
        state = wait_status(proc, url, lambda s: s["weights"]["burst"] == 100)
        assert kube.weights() == (0, 100)
        assert state["actuator"] == "istio"
        assert state["target"] == "virtualservice default/worker-virtual-service"
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
    finally:
        proc.stop()


def test_the_real_process_without_credentials_stays_up_and_not_ready(
    prom: ScriptedServer, tmp_path: Path
) -> None:
    proc, url = start_watcher(
        tmp_path,
        prom.url,
        ACTUATOR="istio",
        KUBECONFIG=str(tmp_path / "missing-kubeconfig"),
        PUBLISH_STATE="false",
        MAX_BACKOFF="1",
    )
    try:
        state = wait_status(proc, url, lambda s: s["write_failures"] >= 3)
        assert "failed calls to virtualservice" in state["not_ready_reason"]
        response = httpx.get(url + "/healthz", timeout=5)
        assert response.status_code == 503
        assert httpx.get(url + "/livez", timeout=5).status_code == 200
        assert "no usable Kubernetes credentials" in proc.output()
    finally:
        proc.stop()
