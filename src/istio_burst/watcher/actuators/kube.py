"""One namespaced custom object, read and JSON-patched through the Kubernetes API.

The plumbing both Kubernetes actuators (Istio's VirtualService, Gateway API's HTTPRoute) share,
down to the actuator itself (`RouteActuator`, given the object and how to find its weights):
the client from in-cluster credentials or a kubeconfig, one attempt per call (the watcher's loop
does the retrying), every failure mapped to an `ActuatorErrorKind`, and a write that tells a
conflict from an invalid write.

A JSON patch whose `test` op fails gets HTTP 422, reason Invalid, with kube-apiserver's generic
message: the same answer as any other rejected patch. So after a 422 the object is read again and
the caller's `changed` says whether what the patch tested is still as it was read: if not, the
write is a CONFLICT (decide again at once), else it is INVALID.

RBAC: exactly the verbs in `VERBS` on the object's resource.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

try:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
except ModuleNotFoundError as missing:  # the client is the `istio` extra, not a core dependency
    raise ModuleNotFoundError(
        "ACTUATOR=istio and ACTUATOR=gateway-api need the Kubernetes client: "
        "pip install 'istio-burst[istio]'"
    ) from missing
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from istio_burst.core.contracts import SUBSETS, Weights
from istio_burst.watcher.actuators import (
    UNVERIFIED,
    Acceptance,
    ActuatorError,
    ActuatorErrorKind,
    Snapshot,
)

__all__ = [
    "VERBS",
    "ApiException",
    "CustomObject",
    "Regarding",
    "RouteActuator",
    "WeightedPair",
    "annotations_of",
    "api_client",
    "client",
    "generation_of",
    "micro_time",
]

VERBS = ("get", "patch")
JSON_PATCH = "application/json-patch+json"
FIELD_MANAGER = "istio-burst-watcher"

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Regarding:
    """The routed object an actuator writes: what its Kubernetes Events are about."""

    api_version: str
    kind: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class WeightedPair:
    """The two entries (primary, burst) of one list in the object that carry the weights, as read.

    Equal pairs: same place, same entries (weights included): nothing changed in between.
    """

    list_path: str  # JSON pointer of the list: "/spec/http/0/route"
    positions: dict[str, int]  # subset -> index in the list
    entries: dict[str, Obj]  # subset -> the entry as read

    def weights(self, *, default: int, maximum: int) -> tuple[Weights, bool]:
        """Relative weights normalised to percent, and whether they were stored as such."""
        raw = {s: self.entries[s].get("weight", default) for s in SUBSETS}
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= maximum
            for v in raw.values()
        ):
            raise ActuatorError(
                ActuatorErrorKind.INVALID, f"weights are not whole numbers in 0..{maximum}: {raw}"
            )
        primary, burst = raw[SUBSETS[0]], raw[SUBSETS[1]]
        if primary + burst == 0:
            raise ActuatorError(ActuatorErrorKind.INVALID, "both weights are 0")
        if primary + burst == 100:
            return Weights(primary, burst), True
        share = round(100 * burst / (primary + burst))
        return Weights(100 - share, share), False

    def patch(self, desired: Weights) -> list[Obj]:
        """Test both entries as read, then set only their weights (in percent)."""
        tests = [
            {
                "op": "test",
                "path": f"{self.list_path}/{self.positions[s]}",
                "value": self.entries[s],
            }
            for s in SUBSETS
        ]
        # `add` sets an object member whether it exists or not (a weight may be left out).
        sets = [
            {"op": "add", "path": f"{self.list_path}/{self.positions[s]}/weight", "value": value}
            for s, value in desired.as_dict().items()
        ]
        return tests + sets


class CustomObject:
    """`kind namespace/name` of `plural.group/version`, called one attempt at a time."""

    def __init__(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        name: str,
        *,
        context: str = "",
        kubeconfig: str = "",
        timeout: float = 5.0,
    ) -> None:
        self.group = group
        self.version = version
        self.plural = plural
        self.namespace = namespace
        self.name = name
        self.context = context
        self.kubeconfig = kubeconfig
        self.timeout = timeout
        self._api: Any = None

    async def get(self) -> Any:
        return await self._call("get", self._get)

    async def patch_tested(self, patch: list[Obj], changed: Callable[[Any], bool]) -> Any:
        """Apply a JSON patch that `test`s what was read; the object as written.

        `changed(now)` says whether the object re-read after a 422 differs from that read.
        """
        try:
            return await self._call("patch", lambda: self._patch(patch))
        except ActuatorError as rejected:
            cause = rejected.__cause__
            if not (isinstance(cause, ApiException) and cause.status == 422):
                raise
            now = await self.get()
            if changed(now):
                raise ActuatorError(
                    ActuatorErrorKind.CONFLICT, f"changed since it was read ({rejected.detail})"
                ) from rejected
            raise

    async def close(self) -> None:
        if self._api is not None:
            await asyncio.to_thread(self._api.api_client.close)

    def _get(self) -> Any:
        return self._client().get_namespaced_custom_object(
            self.group,
            self.version,
            self.namespace,
            self.plural,
            self.name,
            _request_timeout=self.timeout,
        )

    def _patch(self, patch: list[Obj]) -> Any:
        return self._client().patch_namespaced_custom_object(
            self.group,
            self.version,
            self.namespace,
            self.plural,
            self.name,
            patch,
            field_manager=FIELD_MANAGER,
            _content_type=JSON_PATCH,
            _request_timeout=self.timeout,
        )

    def _client(self) -> Any:
        if self._api is None:
            self._api = client.CustomObjectsApi(api_client(self.context, self.kubeconfig))
        return self._api

    async def _call(self, verb: str, fn: Callable[[], Any]) -> Any:
        # The kubernetes client is synchronous; a thread keeps the event loop (and /healthz)
        # answering while a call waits out its timeout.
        try:
            return await asyncio.to_thread(fn)
        except ActuatorError:
            raise
        except Exception as exc:
            raise _translate(verb, exc) from exc


class RouteActuator:
    """The worker's routed object `namespace/name`: its two weighted entries read, and written
    as tested. Each subclass names its kind of object and says how to find the entries."""

    name: str  # the actuator's, as the Actuator protocol asks: "istio", "gateway-api"
    group: str
    version: str
    plural: str
    kind: str
    default_weight: int  # an entry's weight when left out
    max_weight: int

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        context: str = "",
        kubeconfig: str = "",
        timeout: float = 5.0,
    ) -> None:
        self.namespace = namespace
        self.target = f"{self.kind.lower()} {namespace}/{name}"
        self.regarding = Regarding(f"{self.group}/{self.version}", self.kind, namespace, name)
        self._object = CustomObject(
            self.group,
            self.version,
            self.plural,
            namespace,
            name,
            context=context,
            kubeconfig=kubeconfig,
            timeout=timeout,
        )

    def find(self, obj: Any) -> WeightedPair:
        """The two entries in the object as read, or ActuatorError INVALID saying why not."""
        raise NotImplementedError

    def acceptance(self, obj: Any) -> Acceptance:
        """Whether the object as read is in force (unverified unless the API reports it)."""
        return UNVERIFIED

    async def read(self) -> Snapshot:
        obj = await self._object.get()
        ref = self.find(obj)
        weights, exact = ref.weights(default=self.default_weight, maximum=self.max_weight)
        return Snapshot(weights, ref, exact, self.acceptance(obj), annotations_of(obj))

    async def write(self, seen: Snapshot, desired: Weights) -> None:
        ref = seen.token
        assert isinstance(ref, WeightedPair)
        await self._object.patch_tested(ref.patch(desired), lambda now: self._changed(ref, now))

    async def close(self) -> None:
        await self._object.close()

    def _changed(self, ref: WeightedPair, obj: Any) -> bool:
        """Whether either entry (its weight included) differs from `ref`'s read."""
        try:
            return self.find(obj) != ref
        except ActuatorError:
            return True  # gone or reshaped: certainly not what was read


def generation_of(obj: Any) -> int:
    """metadata.generation (bumped by the API server on every change of spec), else 0."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    generation = meta.get("generation") if isinstance(meta, dict) else None
    return generation if isinstance(generation, int) else 0


def annotations_of(obj: Any) -> dict[str, str]:
    """metadata.annotations (where an operator's override is written), else none."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(annotations, dict):
        return {}
    return {str(k): str(v) for k, v in annotations.items()}


def micro_time(unix: float) -> str:
    """A Kubernetes MicroTime (RFC 3339, always six fractional digits, UTC)."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def api_client(context: str, kubeconfig: str) -> Any:
    """An ApiClient from in-cluster credentials, else the kubeconfig (KUBE_CONTEXT); the
    actuators, the Events and the Lease each make theirs with it."""
    configuration = client.Configuration()
    loaders: Any = config  # untyped module
    in_cluster = not (context or kubeconfig) and os.environ.get("KUBERNETES_SERVICE_HOST")
    try:
        if in_cluster:
            loaders.load_incluster_config(client_configuration=configuration)
        else:
            loaders.load_kube_config(
                config_file=kubeconfig or None,
                context=context or None,
                client_configuration=configuration,
            )
    except Exception as exc:
        where = (
            "in-cluster service account"
            if in_cluster
            else f"kubeconfig {kubeconfig or '~/.kube/config'}"
        )
        if context:
            where += f" context {context}"
        raise ActuatorError(
            ActuatorErrorKind.CONFIG, f"no usable Kubernetes credentials ({where}): {exc}"
        ) from exc
    configuration.retries = False  # one attempt per call: the callers do the retrying
    return client.ApiClient(configuration)


def _translate(verb: str, exc: Exception) -> ActuatorError:
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        message = _status_message(exc.body) or str(exc.reason or "")
        return ActuatorError(_kind_of_status(status), f"{verb}: HTTP {status} {message}")
    cause = exc.reason if isinstance(exc, MaxRetryError) else exc
    # urllib3's NewConnectionError (connection refused) subclasses its ConnectTimeoutError:
    # asked first, so a server that is down is `unreachable`, not a `timeout`.
    if isinstance(cause, NewConnectionError):
        return ActuatorError(ActuatorErrorKind.UNREACHABLE, f"{verb} failed: {cause}")
    if isinstance(cause, Urllib3Timeout | TimeoutError):
        return ActuatorError(ActuatorErrorKind.TIMEOUT, f"{verb} timed out: {cause}")
    if isinstance(cause, Urllib3Error | OSError):
        return ActuatorError(ActuatorErrorKind.UNREACHABLE, f"{verb} failed: {cause}")
    return ActuatorError(ActuatorErrorKind.SERVER_ERROR, f"{verb} failed: {exc!r}")


def _kind_of_status(status: int) -> ActuatorErrorKind:
    if status == 404:
        return ActuatorErrorKind.NOT_FOUND
    if status in (401, 403):
        return ActuatorErrorKind.FORBIDDEN
    if status == 409:  # a stale resourceVersion (a 422 is told apart by re-reading)
        return ActuatorErrorKind.CONFLICT
    if status >= 500:
        return ActuatorErrorKind.SERVER_ERROR
    return ActuatorErrorKind.INVALID


def _status_message(body: Any) -> str:
    """The `message` (and `reason`) of a Kubernetes Status object, if the body is one."""
    if not body:
        return ""
    try:
        doc = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        return str(body)[:200]
    if isinstance(doc, dict) and "message" in doc:
        reason = doc.get("reason")
        return f"{reason}: {doc['message']}" if reason else str(doc["message"])
    return str(body)[:200]
