"""What an operator of the watcher gets in Kubernetes, against a real kube-apiserver (through the
recording proxy, as the manifest's ServiceAccount and Role): decision records as Events with
specific reasons, repeats folded into a series; overrides by annotation, which expire and, when
malformed, are refused visibly; two replicas with one leader and a hand-over within the lease
duration, with no double writes; and RBAC that allows exactly what the watcher calls."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from harness.kube.front import VS_NAME, WATCHER_RBAC, KubeFront, Request
from harness.kube.watch import wait_events, wait_weights
from harness.watcher import StartWatcher, status, wait_status
from tests.watcher.fake_http import ScriptedServer
from tests.watcher.rounds import load

LEASE = WATCHER_RBAC / "lease.yaml"
VS = f"virtualservice/{VS_NAME}"


def reasons(seen: list[dict[str, Any]]) -> list[str]:
    return [e["reason"] for e in seen]


@pytest.fixture
def watcher(kube_watcher: StartWatcher) -> StartWatcher:
    """Watcher processes that retry failed writes within a second."""
    return partial(kube_watcher, MAX_BACKOFF="1")


def test_decisions_are_events_regarding_the_virtual_service_and_repeats_make_a_series(
    kube: KubeFront, prom: ScriptedServer, watcher: Any
) -> None:
    load(prom, 30)
    proc, url = watcher()
    wait_weights(kube.kube, kube.namespace, (0, 100))
    load(prom, 3)
    wait_weights(kube.kube, kube.namespace, (100, 0))
    seen = wait_events(
        kube.kube, kube.namespace, lambda s: reasons(s) == ["BurstStarted", "BurstEnded"]
    )
    started = seen[0]
    assert started["regarding"] == {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "namespace": kube.namespace,
        "name": VS_NAME,
    }
    assert (
        started["type"] == "Normal" and started["reportingController"] == "istio-burst.dev/watcher"
    )
    assert (
        "30 req/s above HIGH 15" in started["note"] and "100/0 -> 0/100, written" in started["note"]
    )
    shown = kube.kube.kubectl("events", "--for", VS, "-n", kube.namespace).stdout
    assert "BurstStarted" in shown and "BurstEnded" in shown

    # The route grows a third weighted destination: the watcher cannot use it, and every round
    # fails the same way. One Event, its series counting the repeats.
    def third_destination(vs: dict[str, Any]) -> None:
        vs["spec"]["http"][0]["route"].append(
            {"destination": {"host": "worker-service", "subset": "canary"}, "weight": 10}
        )

    kube.edit(third_destination)
    load(prom, 30)
    failing = wait_events(
        kube.kube,
        kube.namespace,
        lambda s: len(s) == 3 and s[2].get("series", {}).get("count", 0) >= 3,
    )
    assert reasons(failing) == ["BurstStarted", "BurstEnded", "BurstStarted"]
    assert failing[2]["type"] == "Warning" and "failed: invalid" in failing[2]["note"]
    ledger = status(url)["decisions"]
    assert ledger[-1]["outcome"] == "failed" and ledger[-1]["count"] >= 3
    assert proc.alive()


def annotate(kube: KubeFront, *pairs: str) -> None:
    kube.kube.kubectl("annotate", VS, "-n", kube.namespace, "--overwrite", *pairs)


def test_an_annotation_overrides_expires_and_a_malformed_one_is_refused_visibly(
    kube: KubeFront, prom: ScriptedServer, watcher: Any
) -> None:
    load(prom, 3)
    proc, url = watcher()
    wait_status(proc, url, lambda s: s["ready"])
    until = (datetime.now(UTC) + timedelta(seconds=12)).isoformat(timespec="seconds")
    annotate(kube, "istio-burst.dev/override=burst", f"istio-burst.dev/override-until={until}")
    wait_weights(kube.kube, kube.namespace, (0, 100), timeout=10)
    state = wait_status(proc, url, lambda s: s["override"] is not None)
    assert state["override"]["source"] == "annotation" and state["reason"] == "override"
    wait_events(kube.kube, kube.namespace, lambda s: reasons(s) == ["OverrideApplied"])

    # It expires by itself (the annotation stays): recorded, and the load decides again.
    wait_weights(kube.kube, kube.namespace, (100, 0), timeout=40)
    seen = wait_events(
        kube.kube,
        kube.namespace,
        lambda s: reasons(s)[:3] == ["OverrideApplied", "OverrideExpired", "BurstEnded"],
    )
    assert "expired" in seen[1]["note"]
    assert status(url)["override"] is None

    annotate(kube, "istio-burst.dev/override=sideways", "istio-burst.dev/override-until-")
    refused = wait_status(proc, url, lambda s: bool(s["override_problem"]))
    assert "'sideways' is not one of primary, burst, pause" in refused["override_problem"]
    seen = wait_events(kube.kube, kube.namespace, lambda s: "OverrideRefused" in reasons(s))
    bad = seen[reasons(seen).index("OverrideRefused")]
    assert bad["type"] == "Warning" and "sideways" in bad["note"]
    load(prom, 30)  # decided as if there were no override
    wait_weights(kube.kube, kube.namespace, (0, 100))


def vs_patches(kube: KubeFront) -> list[Request]:
    return [r for r in kube.patches() if "/virtualservices/" in r.path]


def role_of(url: str) -> str:
    try:
        return str(status(url)["role"])
    except Exception:
        return "gone"


def test_two_watchers_elect_one_leader_and_the_other_takes_over_within_15_s(
    kube: KubeFront, prom: ScriptedServer, watcher: Any
) -> None:
    kube.kube.kubectl("apply", "-n", kube.namespace, "-f", str(LEASE))
    election = {"LEADER_ELECTION": "true", "LEASE_DURATION": "10"}
    load(prom, 30)
    first, first_url = watcher(IDENTITY="watcher-a", **election)
    second, second_url = watcher(IDENTITY="watcher-b", **election)

    wait_weights(kube.kube, kube.namespace, (0, 100))
    wait_status(second, second_url, lambda s: s["role"] in ("leader", "standby"))
    roles = {role_of(first_url), role_of(second_url)}
    assert roles == {"leader", "standby"}, roles
    leader, standby = (first, second) if role_of(first_url) == "leader" else (second, first)
    standby_url = second_url if leader is first else first_url
    standby_state = status(standby_url)
    assert standby_state["ready"] is True
    assert len(vs_patches(kube)) == 1, "one writer: one PATCH for the one change"

    os.kill(leader.pid, signal.SIGKILL)  # no clean release: the Lease must run out
    killed = time.monotonic()
    wait_status(standby, standby_url, lambda s: s["role"] == "leader", timeout=30)
    took = time.monotonic() - killed
    print(f"took over {took:.1f} s after the leader was killed")
    assert took <= 15, f"took over after {took:.1f} s"
    lease = kube.kube.kubectl(
        "get",
        "lease",
        "istiowatcher",
        "-n",
        kube.namespace,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    )
    assert lease.stdout == ("watcher-b" if leader is first else "watcher-a")

    load(prom, 3)  # the new leader carries on from the weights it reads
    wait_weights(kube.kube, kube.namespace, (100, 0))
    assert len(vs_patches(kube)) == 2, "still one PATCH per change: no double writes"
    leader.stop()

    # A leader that stops cleanly (SIGTERM, a rollout) releases the Lease: no wait for it.
    third, third_url = watcher(IDENTITY="watcher-c", **election)
    wait_status(third, third_url, lambda s: s["role"] == "standby")
    successor = standby  # leads since the first one was killed
    successor.stop()
    stopped = time.monotonic()
    wait_status(third, third_url, lambda s: s["role"] == "leader", timeout=30)
    assert time.monotonic() - stopped < 8, "released, not run out"
    assert len(vs_patches(kube)) == 2, "the weights already match: nothing written"


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("get", f"virtualservices.networking.istio.io/{VS_NAME}", True),
        ("patch", f"virtualservices.networking.istio.io/{VS_NAME}", True),
        ("update", f"virtualservices.networking.istio.io/{VS_NAME}", False),
        ("get", "virtualservices.networking.istio.io/another", False),
        ("list", "virtualservices.networking.istio.io", False),
        ("create", "events.events.k8s.io", True),
        ("patch", "events.events.k8s.io", True),
        ("delete", "events.events.k8s.io", False),
        ("list", "events.events.k8s.io", False),
        ("create", "events", False),  # the core/v1 Events: not used
        ("get", "leases.coordination.k8s.io/istiowatcher", True),
        ("update", "leases.coordination.k8s.io/istiowatcher", True),
        ("create", "leases.coordination.k8s.io", False),
        ("delete", "leases.coordination.k8s.io/istiowatcher", False),
        ("get", "leases.coordination.k8s.io/another", False),
        ("update", "leases.coordination.k8s.io/another", False),
        ("get", "secrets", False),
    ],
)
def test_the_rbac_is_exactly_sufficient(
    kube: KubeFront, verb: str, resource: str, allowed: bool
) -> None:
    account = f"system:serviceaccount:{kube.namespace}:istiowatcher"
    done = kube.kube.kubectl(
        "auth", "can-i", verb, resource, f"--as={account}", "-n", kube.namespace, check=False
    )
    assert done.stdout.strip() == ("yes" if allowed else "no"), (verb, resource, done.stderr)
