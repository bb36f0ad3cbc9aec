"""Two replicas, one writer: leader election through a coordination.k8s.io Lease.

The Lease (LEASE_NAME, in the watcher's namespace) is created by the manifests; the watcher only
`get`s and `update`s that one object (VERBS), so its RBAC names it. Every `retry` seconds each
replica reads it:
- held by this replica: renew it (an update carrying the resourceVersion read, so a concurrent
  writer makes it fail with 409 instead of both winning);
- held by another: take it once it has not changed for its whole `leaseDurationSeconds`, as
  this replica's own clock measures (no trust in the other's clock), or at once if released.
A leader leads only until `renew_deadline` after the start of its last successful renewal, which
is shorter than the lease duration: it stops writing before any other replica may start. On a
clean shutdown the leader releases the Lease, and another takes over within one retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from istio_burst.core.redis import describe_error
from istio_burst.watcher import metrics
from istio_burst.watcher.actuators.kube import ApiException, api_client, client, micro_time

VERBS = ("get", "update")

log = logging.getLogger(__name__)


class LeaseElection:
    def __init__(
        self,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration: float,
        context: str = "",
        kubeconfig: str = "",
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew_deadline = duration * 2 / 3
        self.retry = duration / 5
        self.context = context
        self.kubeconfig = kubeconfig
        self.timeout = min(timeout, self.retry)
        self.clock = clock
        self._api: Any = None
        self._leading_until = 0.0
        self._observed: tuple[str, str] = ("", "")  # (holder, resourceVersion) last seen
        self._observed_at = 0.0
        self._problem = ""

    def is_leader(self) -> bool:
        return self.clock() < self._leading_until

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            was = self.is_leader()
            try:
                await asyncio.to_thread(self._try_once)
                self._problem = ""
            except Exception as exc:  # the API server away, RBAC missing: say so once, go on
                problem = describe_error(exc)
                if problem != self._problem:
                    log.warning("lease %s: %s", self.name, problem)
                self._problem = problem
            now = self.is_leader()
            metrics.LEADER.set(int(now))
            if now != was:
                log.info("%s the lease %s", "holding" if now else "lost", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.retry)

    async def release(self) -> None:
        """Give the Lease up (clean shutdown): another replica takes over at once."""
        if not self.is_leader():
            return
        self._leading_until = 0.0
        try:
            await asyncio.to_thread(self._release)
        except Exception as exc:
            log.warning("could not release the lease %s: %s", self.name, describe_error(exc))

    def _try_once(self) -> None:
        started = self.clock()
        lease = self._leases().read_namespaced_lease(
            self.name, self.namespace, _request_timeout=self.timeout
        )
        spec = lease.spec
        holder = spec.holder_identity or ""
        version = lease.metadata.resource_version
        if (holder, version) != self._observed:
            self._observed, self._observed_at = (holder, version), started
        duration = spec.lease_duration_seconds or self.duration
        mine = holder == self.identity
        expired = started - self._observed_at >= duration
        if not (mine or not holder or expired):
            self._leading_until = 0.0
            return
        now = time.time()
        acquired = spec.acquire_time.timestamp() if mine and spec.acquire_time else now
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        body = self._body(version, self.identity, acquired, now, transitions)
        try:
            updated = self._leases().replace_namespaced_lease(
                self.name, self.namespace, body, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 409:  # another replica updated it first: it leads
                self._leading_until = 0.0
                return
            raise
        self._leading_until = started + self.renew_deadline
        self._observed = (self.identity, updated.metadata.resource_version)
        self._observed_at = started

    def _release(self) -> None:
        lease = self._leases().read_namespaced_lease(
            self.name, self.namespace, _request_timeout=self.timeout
        )
        if lease.spec.holder_identity != self.identity:
            return
        transitions = lease.spec.lease_transitions or 0
        body = self._body(lease.metadata.resource_version, None, None, time.time(), transitions)
        self._leases().replace_namespaced_lease(
            self.name, self.namespace, body, _request_timeout=self.timeout
        )

    def _body(
        self,
        version: str,
        holder: str | None,
        acquired: float | None,
        renewed: float,
        transitions: int | None,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": holder,
            "leaseDurationSeconds": round(self.duration),
            "renewTime": micro_time(renewed),
        }
        if acquired is not None:
            spec["acquireTime"] = micro_time(acquired)
        if transitions is not None:
            spec["leaseTransitions"] = transitions
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": version,
            },
            "spec": spec,
        }

    def _leases(self) -> Any:
        if self._api is None:
            self._api = client.CoordinationV1Api(api_client(self.context, self.kubeconfig))
        return self._api

    async def close(self) -> None:
        if self._api is not None:
            await asyncio.to_thread(self._api.api_client.close)
