"""The Istio actuator against a real kube-apiserver (harness.kube), through a recording proxy.

The watcher authenticates as the manifest's own ServiceAccount and is authorized by the
manifest's own Role, in a namespace of each test's own; every answer is the real server's but
the few it cannot be made to give on demand (409, 5xx, a slow answer, Istio's webhook while no
istiod runs), which `harness.kube.front.KubeFront` injects in the real server's format. The
watcher's rounds run in-process with a scripted Prometheus and a fake clock (fixtures `kube`,
`prom`, `make_watcher` in conftest.py); two tests run the real `istio-burst watcher` process.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from harness.actuators import closing
from harness.kube.front import (
    GENERIC_422,
    JSON_PATCH,
    VS_API,
    VS_NAME,
    WATCHER_RBAC,
    KubeFront,
    Obj,
    virtual_service,
)
from harness.watcher import StartWatcher, start_watcher, wait_status
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind
from istio_burst.watcher.actuators.istio import VERBS, IstioActuator
from istio_burst.watcher.loop import CONFLICT_RETRIES
from tests.watcher.fake_http import ScriptedServer
from tests.watcher.rounds import load, next_round


def vs_path(kube: KubeFront) -> str:
    return f"{VS_API.format(ns=kube.namespace)}/{VS_NAME}"


def metric_value_in_process(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def without_weights(obj: Obj) -> Obj:
    """The object but for its weights and what the server itself keeps in metadata."""
    out = copy.deepcopy(obj)
    for server_kept in ("resourceVersion", "generation", "managedFields"):
        out["metadata"].pop(server_kept, None)
    for entry in out["spec"]["http"][0]["route"]:
        entry.pop("weight", None)
    return out


def test_the_watcher_needs_exactly_get_and_patch() -> None:
    assert VERBS == ("get", "patch")


async def test_bursting_patches_only_the_two_weights_with_tests_of_what_was_read(
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any
) -> None:
    before = kube.get()
    load(prom, 30)
    watcher = make_watcher()
    await next_round(watcher)

    assert kube.weights() == (0, 100)
    get, patch = kube.requests
    assert (get.method, get.path, get.accept) == ("GET", vs_path(kube), "application/json")
    assert (
        patch.path.startswith(vs_path(kube) + "?")
        and "fieldManager=istio-burst-watcher" in patch.path
    )
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
    # Istio reports nothing the watcher can rely on (README): in force once written, assumed.
    assert watcher.state.routing["state"] == "unverified"


async def test_no_write_when_the_weights_already_match(
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any
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
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any
) -> None:
    def someone_else(api: KubeFront) -> None:
        def change(vs: Obj) -> None:
            set_weights(vs, 50, 50)
            vs["spec"]["http"][0]["timeout"] = "5s"
            vs["metadata"].setdefault("labels", {})["edited-by"] = "operator"

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
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any
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
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any
) -> None:
    kube.fail.append(("PATCH", 409))
    load(prom, 30)
    watcher = make_watcher()
    await next_round(watcher)
    assert [r.method for r in kube.requests] == ["GET", "PATCH", "GET", "PATCH"]
    assert kube.weights() == (0, 100)
    assert watcher.write_failures == 0


def send_patch(
    kube: KubeFront, operations: list[dict[str, Any]], *, dry_run: bool = False
) -> httpx.Response:
    """A JSON patch as the watcher's ServiceAccount, straight to the real API server."""
    return httpx.patch(
        kube.kube.server + vs_path(kube) + ("?dryRun=All" if dry_run else ""),
        content=orjson.dumps(operations),
        headers={
            "Authorization": f"Bearer {kube.token}",
            "Content-Type": JSON_PATCH,
            "Accept": "application/json",
        },
        verify=kube.kube.tls(),
        timeout=10,
    )


def test_a_failed_test_op_gets_kube_apiservers_generic_422(kube: KubeFront) -> None:
    """The real server's answer to a `test` that fails says nothing of why: the watcher must
    re-read to tell a race from a refusal."""
    stale = [{"op": "test", "path": "/spec/http/0/route/0/weight", "value": 50}]
    response = send_patch(kube, stale)
    assert response.status_code == 422
    body = response.json()
    assert (body["reason"], body["code"], body["status"]) == ("Invalid", 422, "Failure")
    assert body["message"] == GENERIC_422
    assert "testing value" not in response.text
    assert kube.weights() == (100, 0)


def test_a_weight_of_the_wrong_type_gets_the_schemas_422_with_causes(kube: KubeFront) -> None:
    wrong_type = send_patch(
        kube, [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": "50"}]
    )
    assert wrong_type.status_code == 422
    body = wrong_type.json()
    assert body["reason"] == "Invalid"
    # Two causes (the type, and the CEL rules left unchecked), so the real server lists them in
    # brackets: '... is invalid: [spec.http[0].route[0].weight: Invalid value: ..., ...]'.
    assert body["message"].startswith(
        'VirtualService.networking.istio.io "worker-virtual-service" is invalid: '
        "[spec.http[0].route[0].weight: Invalid value: "
    )
    assert "must be of type integer" in body["message"]
    assert body["details"]["causes"][0]["field"] == "spec.http[0].route[0].weight"
    assert kube.weights() == (100, 0), "nothing was stored"


async def test_an_edit_racing_the_write_is_decided_again_without_a_back_off(
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any
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
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any
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


def _delete_the_virtual_service(kube: KubeFront) -> Callable[[], None]:
    kube.delete()
    return lambda: kube.put(virtual_service(100, 0))


def _unbind_the_role(kube: KubeFront) -> Callable[[], None]:
    kube.kube.kubectl("delete", "rolebinding", "istiowatcher", "-n", kube.namespace)
    return lambda: _apply_watcher_rbac(kube)


def _allow_only_get(kube: KubeFront) -> Callable[[], None]:
    kube.kube.kubectl(
        "patch", "role", "istiowatcher", "-n", kube.namespace, "--type=json",
        "-p", '[{"op": "replace", "path": "/rules/0/verbs", "value": ["get"]}]',
    )  # fmt: skip
    return lambda: _apply_watcher_rbac(kube)


def _apply_watcher_rbac(kube: KubeFront) -> None:
    kube.kube.kubectl(
        "apply", "--server-side", "--force-conflicts", "-n", kube.namespace,
        "-f", str(WATCHER_RBAC / "role.yaml"),
    )  # fmt: skip


def _refuse_burst_by_policy(kube: KubeFront) -> Callable[[], None]:
    """A ValidatingAdmissionPolicy refusing any burst weight: a real 422 for a write that
    nothing raced (the object is unchanged when the watcher re-reads)."""
    name = f"no-burst-{kube.namespace}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["networking.istio.io"],
                        "apiVersions": ["*"],
                        "operations": ["UPDATE"],
                        "resources": ["virtualservices"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": "object.spec.http.all(h, h.route.all(r, "
                    "!has(r.destination.subset) || r.destination.subset != 'burst' "
                    "|| !has(r.weight) || r.weight == 0))",
                    "message": "bursting is frozen here",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": kube.namespace}
                }
            },
        },
    }
    kube.kube.kubectl("apply", "-f", "-", input=orjson.dumps(policy).decode())
    kube.kube.kubectl("apply", "-f", "-", input=orjson.dumps(binding).decode())
    wait_policy(kube, in_force=True)

    def lift() -> None:
        kube.kube.kubectl("delete", "validatingadmissionpolicybinding", name)
        kube.kube.kubectl("delete", "validatingadmissionpolicy", name)
        wait_policy(kube, in_force=False)

    return lift


def wait_policy(kube: KubeFront, *, in_force: bool, timeout: float = 30) -> None:
    """Until a dry-run burst is refused (or no longer refused). The API server loads policies
    in the background and shows nowhere when it has: trying is the only way to tell."""
    deadline = time.monotonic() + timeout
    trial = [{"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 100}]
    while (send_patch(kube, trial, dry_run=True).status_code == 422) != in_force:
        assert time.monotonic() < deadline, (
            f"the admission policy never {'took' if in_force else 'lost'} effect"
        )
        time.sleep(0.2)


def _inject(method: str, status: int) -> Callable[[KubeFront], Callable[[], None]]:
    def fault(kube: KubeFront) -> Callable[[], None]:
        kube.fail.append((method, status))
        return lambda: None

    return fault


@pytest.mark.parametrize(
    ("fault", "status", "kind", "words"),
    [
        (_delete_the_virtual_service, 404, ActuatorErrorKind.NOT_FOUND, "not found"),
        (_unbind_the_role, 403, ActuatorErrorKind.FORBIDDEN, "cannot get resource"),
        (_allow_only_get, 403, ActuatorErrorKind.FORBIDDEN, "cannot patch resource"),
        (_inject("GET", 500), 500, ActuatorErrorKind.SERVER_ERROR, "etcdserver"),
        (_inject("PATCH", 503), 503, ActuatorErrorKind.SERVER_ERROR, "ServiceUnavailable"),
        # A 422 with nothing changed since the read: a write the server refuses, not a race.
        (_refuse_burst_by_policy, 422, ActuatorErrorKind.INVALID, "bursting is frozen here"),
    ],
    ids=["deleted", "unbound", "get-only", "etcd-500", "unavailable-503", "policy-422"],
)
async def test_api_errors_log_one_clear_line_hold_and_back_off(
    kube: KubeFront,
    prom: ScriptedServer,
    make_watcher: Any,
    caplog: pytest.LogCaptureFixture,
    *,
    fault: Callable[[KubeFront], Callable[[], None]],
    status: int,
    kind: ActuatorErrorKind,
    words: str,
) -> None:
    load(prom, 30)
    watcher = make_watcher()
    before = None if status == 404 else without_weights(kube.get())
    undo = fault(kube)
    with caplog.at_level(logging.WARNING, logger="istio_burst.watcher.loop"):
        await next_round(watcher)
    if before is not None:
        assert without_weights(kube.get()) == before and kube.weights() == (100, 0), (
            "nothing half written"
        )
    [line] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    text = line.getMessage()
    assert kube.target in text
    assert f"({kind})" in text and f"HTTP {status}" in text and words in text
    assert "Traceback" not in text
    kube.rejected.clear()  # the policy's refusal was the point

    requests_so_far = len(kube.requests)
    await next_round(watcher, seconds=0.1)  # inside the back-off: no call at all
    assert len(kube.requests) == requests_so_far
    undo()
    await next_round(watcher)  # after it: retried, and this time it works
    assert kube.weights() == (0, 100)
    assert watcher.write_failures == 0


async def test_repeated_failures_make_it_not_ready_and_it_recovers(
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any
) -> None:
    kube.fail.extend([("GET", 503)] * 3)
    load(prom, 3)
    watcher = make_watcher()
    for _ in range(3):
        await next_round(watcher)
    assert f"3 failed calls to {kube.target}" in (watcher.not_ready_reason())
    assert watcher.state.ready is False
    await next_round(watcher)
    assert watcher.not_ready_reason() == ""


async def test_a_hanging_api_server_times_out(
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any, caplog: pytest.LogCaptureFixture
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
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any, caplog: pytest.LogCaptureFixture
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
    kube: KubeFront, prom: ScriptedServer, tmp_path: Path
) -> None:
    actuator = IstioActuator(
        "default",
        "worker-virtual-service",
        kubeconfig=str(kube.kubeconfig(tmp_path / "bad", token="stolen")),
    )
    async with closing(actuator):
        with pytest.raises(ActuatorError) as raised:
            await actuator.read()
    assert raised.value.kind is ActuatorErrorKind.FORBIDDEN
    assert "HTTP 401" in raised.value.detail


async def test_missing_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    actuator = IstioActuator("default", "vs", kubeconfig=str(tmp_path / "nope"))
    async with closing(actuator):
        with pytest.raises(ActuatorError) as raised:
            await actuator.read()
    assert raised.value.kind is ActuatorErrorKind.CONFIG


async def test_weights_that_do_not_sum_to_100_are_read_relative_and_rewritten(
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any
) -> None:
    kube.edit(lambda vs: set_weights(vs, 30, 10))
    load(prom, 12)  # between the thresholds: hold what is there (75/25), in canonical form
    watcher = make_watcher()
    await next_round(watcher)
    assert kube.weights() == (75, 25)


async def test_a_missing_weight_counts_as_0_and_is_added(
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any
) -> None:
    kube.edit(lambda vs: vs["spec"]["http"][0]["route"][1].pop("weight"))
    load(prom, 30)
    watcher = make_watcher()
    await next_round(watcher)
    assert kube.weights() == (0, 100)


async def test_dry_run_writes_nothing_and_reports_what_it_would_do(
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any, caplog: pytest.LogCaptureFixture
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
    kube: KubeFront, prom: ScriptedServer, kube_watcher: StartWatcher
) -> None:
    load(prom, 3)
    proc, url = kube_watcher()
    wait_status(proc, url, lambda s: s["ready"])
    load(prom, 30)
    state = wait_status(proc, url, lambda s: s["weights"]["burst"] == 100)
    assert kube.weights() == (0, 100)
    assert state["actuator"] == "istio"
    assert state["target"] == kube.target
    assert httpx.get(url + "/healthz", timeout=5).status_code == 200


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
