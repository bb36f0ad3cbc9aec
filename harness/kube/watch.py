"""Waiting for what the real API server stores, by watching it: each change arrives as it is
written, so a wait ends at once, with no polling interval, and on timeout says what it saw."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from harness.kube.cluster import LocalKube
from harness.kube.front import VS_NAME, weights_of
from harness.processes import ManagedProcess

Obj = dict[str, Any]
ISTIO = ("networking.istio.io", "v1", "virtualservices")
EVENTS = ("events.k8s.io", "v1", "events")


def watch_until(
    kube: LocalKube,
    resource: tuple[str, str, str],
    namespace: str,
    *,
    check: Callable[[list[Obj]], bool],
    saw: Callable[[list[Obj]], str],
    timeout: float = 30.0,
    name: str | None = None,
) -> list[Obj]:
    """Watch `resource` (group, version, plural) in `namespace` (only `name`, if given) as the
    admin until `check` holds for the objects there; returns them, or raises TimeoutError with
    `saw` of the last ones (and the last error, if the watch failed)."""
    group, version, plural = resource
    path = f"/apis/{group}/{version}/namespaces/{namespace}/{plural}"
    selector = {"fieldSelector": f"metadata.name={name}"} if name else {}
    deadline = time.monotonic() + timeout
    seen: dict[str, Obj] = {}
    failure = ""
    while (left := deadline - time.monotonic()) > 0:
        seen.clear()
        try:
            with kube.admin_client(timeout=left + 10) as api:
                # The whole collection first, so `check` never judges a part of it; then every
                # change after that list, until the server ends the watch (timeoutSeconds).
                listed = api.get(path, params=selector)
                listed.raise_for_status()
                collection = listed.json()
                seen.update((obj["metadata"]["uid"], obj) for obj in collection["items"])
                if check(list(seen.values())):
                    return list(seen.values())
                params = {
                    "watch": "true",
                    "resourceVersion": collection["metadata"]["resourceVersion"],
                    "timeoutSeconds": str(max(1, int(left))),
                    **selector,
                }
                with api.stream("GET", path, params=params) as answer:
                    answer.raise_for_status()
                    for line in answer.iter_lines():
                        event = orjson.loads(line)
                        obj: Obj = event["object"]
                        if event["type"] == "ERROR":  # a Status (410 Gone, say): list again
                            raise httpx.HTTPError(str(obj.get("message")))
                        if event["type"] == "DELETED":
                            seen.pop(obj["metadata"]["uid"], None)
                        elif event["type"] != "BOOKMARK":
                            seen[obj["metadata"]["uid"]] = obj
                        if check(list(seen.values())):
                            return list(seen.values())
        except httpx.HTTPError as exc:
            # A server just restarted may refuse or not serve the resource yet: list again.
            failure = f" (the watch failed: {exc})"
            time.sleep(0.2)
    raise TimeoutError(saw(list(seen.values())) + failure)


def wait_weights(
    kube: LocalKube,
    namespace: str,
    want: tuple[int, int],
    timeout: float = 30.0,
    process: ManagedProcess | None = None,
) -> None:
    """Until the worker VirtualService's primary/burst weights are `want`; a timeout names the
    weights seen last (and what `process`, the watcher, wrote)."""

    def saw(objects: list[Obj]) -> str:
        weights = [weights_of(vs) for vs in objects] or "no VirtualService"
        logs = f"\n{process.output()}" if process is not None else ""
        return f"weights {weights}, never {want}{logs}"

    watch_until(
        kube,
        ISTIO,
        namespace,
        check=lambda objects: [weights_of(vs) for vs in objects] == [want],
        saw=saw,
        timeout=timeout,
        name=VS_NAME,
    )


def wait_events(
    kube: LocalKube, namespace: str, check: Callable[[list[Obj]], bool], timeout: float = 30.0
) -> list[Obj]:
    """Until `check` holds for the namespace's Events (events.k8s.io/v1) by eventTime; returns
    them, or a timeout names the reasons and series seen last."""

    def by_time(events: list[Obj]) -> list[Obj]:
        return sorted(events, key=lambda e: e["eventTime"])

    def saw(events: list[Obj]) -> str:
        return (
            f"the Events never matched: {[(e['reason'], e.get('series')) for e in by_time(events)]}"
        )

    return by_time(
        watch_until(
            kube,
            EVENTS,
            namespace,
            check=lambda events: check(by_time(events)),
            saw=saw,
            timeout=timeout,
        )
    )
