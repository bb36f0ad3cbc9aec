"""Decision records as Kubernetes Events (events.k8s.io/v1) regarding the routed object, so
`kubectl events --for virtualservice/<name>` and `kubectl describe` show the history.

A repeat of the last record (a write failing round after round) is folded into its Event's
`series` (count, lastObservedTime) instead of a new Event each second: the Python client has no
client-go EventRecorder to do it. Events go through a bounded queue: the API server being slow
or away never slows a decision.

RBAC: `create` and `patch` on `events.events.k8s.io` in the namespace (VERBS).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from istio_burst.core.contracts import DecisionRecord
from istio_burst.core.redis import describe_error
from istio_burst.watcher import metrics
from istio_burst.watcher.actuators.kube import Regarding, api_client, client, micro_time
from istio_burst.watcher.delivery import BackgroundSender
from istio_burst.watcher.words import record_words

VERBS = ("create", "patch")
REPORTING_CONTROLLER = "istio-burst.dev/watcher"
MAX_NOTE = 1024  # bytes, the API server's limit


def event_body(
    record: DecisionRecord, regarding: Regarding, name: str, instance: str
) -> dict[str, Any]:
    note = record_words(record, with_time=False).encode()[:MAX_NOTE].decode("utf-8", "ignore")
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": regarding.namespace},
        "eventTime": micro_time(record.at),
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": instance[:128],
        "action": "SetWeights" if record.after != record.before else "Decide",
        "reason": str(record.reason),
        "note": note,
        "type": "Warning" if record.warning else "Normal",
        "regarding": {
            "apiVersion": regarding.api_version,
            "kind": regarding.kind,
            "namespace": regarding.namespace,
            "name": regarding.name,
        },
    }


class KubeEvents:
    def __init__(
        self,
        regarding: Regarding,
        *,
        instance: str,
        context: str,
        kubeconfig: str,
        timeout: float,
        queue_size: int = 100,
    ) -> None:
        self.regarding = regarding
        self.instance = instance
        self.context = context
        self.kubeconfig = kubeconfig
        self.timeout = timeout
        self._api: Any = None
        self._last_name = ""  # the Event of the last record: its repeats go into its series
        self._sender: BackgroundSender[tuple[DecisionRecord, bool]] = BackgroundSender(
            "kubernetes events",
            self._write,
            self._count,
            queue_size=queue_size,
            deadline=3 * timeout,
            describe=describe_error,
        )

    def offer(self, record: DecisionRecord, repeat: bool) -> None:
        self._sender.put((record, repeat))

    def _count(self, outcome: str) -> None:
        if outcome != "sent":  # "sent" is counted as created or updated, in _write
            metrics.KUBE_EVENTS.labels(outcome=outcome).inc()

    async def _write(self, item: tuple[DecisionRecord, bool]) -> None:
        record, repeat = item
        if repeat and self._last_name:
            await asyncio.to_thread(self._series, record)
            metrics.KUBE_EVENTS.labels(outcome="updated").inc()
            return
        name = f"{self.regarding.name}.{secrets.token_hex(8)}"
        self._last_name = ""  # a repeat of a record whose Event failed has no series to go in
        await asyncio.to_thread(self._create, record, name)
        self._last_name = name
        metrics.KUBE_EVENTS.labels(outcome="created").inc()

    def _create(self, record: DecisionRecord, name: str) -> None:
        body = event_body(record, self.regarding, name, self.instance)
        self._events().create_namespaced_event(
            self.regarding.namespace, body, _request_timeout=self.timeout
        )

    def _series(self, record: DecisionRecord) -> None:
        patch = {"series": {"count": record.count, "lastObservedTime": micro_time(record.last_at)}}
        self._events().patch_namespaced_event(
            self._last_name, self.regarding.namespace, patch, _request_timeout=self.timeout
        )

    def _events(self) -> Any:
        if self._api is None:
            self._api = client.EventsV1Api(api_client(self.context, self.kubeconfig))
        return self._api

    async def close(self) -> None:
        await self._sender.close()
        if self._api is not None:
            api, self._api = self._api, None
            await asyncio.to_thread(api.api_client.close)
