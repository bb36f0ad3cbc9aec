"""The worker's VirtualService, changed through the Kubernetes API with the `kubernetes` client.

Only the `weight` of the two destinations (subsets primary and burst) of one HTTP route is ever
written, as an RFC 6902 JSON patch that first `test`s both destination entries against what was
read: if anyone changed them in between, the API server applies nothing. Its answer (HTTP 422,
reason Invalid, a generic message) is the same as for any other rejected patch, so after a 422 the
object is read again: if either destination changed, the write is a CONFLICT (the watcher decides
again at once), else it is INVALID. Nothing else in the object is sent, so other fields edited
concurrently are untouched.

RBAC: the watcher uses exactly the verbs in `VERBS` on `virtualservices.networking.istio.io`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from istio_burst.core.contracts import SUBSET_BURST, SUBSET_PRIMARY, Weights
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind, Snapshot
from istio_burst.watcher.kube import ApiException, api_client, client

GROUP = "networking.istio.io"
VERSION = "v1"
PLURAL = "virtualservices"
VERBS = ("get", "patch")
JSON_PATCH = "application/json-patch+json"
FIELD_MANAGER = "istio-burst-watcher"


class RouteRef:
    """Where in the object the two destinations are, and what they looked like when read."""

    def __init__(
        self, http_index: int, positions: dict[str, int], entries: dict[str, dict[str, Any]]
    ) -> None:
        self.http_index = http_index
        self.positions = positions
        self.entries = entries


def find_route(obj: Any) -> RouteRef:
    """The HTTP route with destinations of subsets primary and burst, or INVALID saying why not."""
    spec = obj.get("spec") if isinstance(obj, dict) else None
    http = spec.get("http") if isinstance(spec, dict) else None
    if not isinstance(http, list):
        raise ActuatorError(ActuatorErrorKind.INVALID, "spec.http is missing: no HTTP route")
    for i, route in enumerate(http):
        destinations = route.get("route") if isinstance(route, dict) else None
        if not isinstance(destinations, list):
            continue
        positions: dict[str, int] = {}
        for j, entry in enumerate(destinations):
            dest = entry.get("destination") if isinstance(entry, dict) else None
            subset = dest.get("subset") if isinstance(dest, dict) else None
            if subset in (SUBSET_PRIMARY, SUBSET_BURST) and subset not in positions:
                positions[subset] = j
        if len(positions) < 2:
            continue
        others = [
            d
            for j, d in enumerate(destinations)
            if j not in positions.values() and isinstance(d, dict) and d.get("weight")
        ]
        if others:
            raise ActuatorError(
                ActuatorErrorKind.INVALID,
                f"spec.http[{i}] also sends traffic to destinations other than the primary "
                "and burst subsets; refusing to change its weights",
            )
        entries = {name: destinations[j] for name, j in positions.items()}
        return RouteRef(i, positions, entries)
    raise ActuatorError(
        ActuatorErrorKind.INVALID,
        "no HTTP route has destinations with subsets primary and burst",
    )


def _destinations_changed(ref: RouteRef, obj: Any) -> bool:
    """Whether either destination entry (its weight included) differs from `ref`'s read."""
    try:
        now = find_route(obj)
    except ActuatorError:
        return True  # the route itself is gone or reshaped: certainly not what was read
    return (now.http_index, now.positions, now.entries) != (
        ref.http_index,
        ref.positions,
        ref.entries,
    )


def weights_of(ref: RouteRef) -> tuple[Weights, bool]:
    """The route's weights, normalised to sum to 100, and whether they already did."""
    raw = {name: ref.entries[name].get("weight", 0) for name in (SUBSET_PRIMARY, SUBSET_BURST)}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in raw.values()):
        raise ActuatorError(ActuatorErrorKind.INVALID, f"weights are not whole numbers: {raw}")
    primary, burst = raw[SUBSET_PRIMARY], raw[SUBSET_BURST]
    if primary + burst == 0:
        raise ActuatorError(ActuatorErrorKind.INVALID, "both weights are 0")
    if primary + burst == 100:
        return Weights(primary, burst), True
    share = round(100 * burst / (primary + burst))  # Istio treats weights as relative
    return Weights(100 - share, share), False


def annotations_of(obj: Any) -> dict[str, str]:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        return {}
    return {str(k): str(v) for k, v in annotations.items()}


def weight_patch(ref: RouteRef, desired: Weights) -> list[dict[str, Any]]:
    """Test both destination entries as read, then set only their weights."""
    base = f"/spec/http/{ref.http_index}/route"
    tests = [
        {"op": "test", "path": f"{base}/{ref.positions[name]}", "value": ref.entries[name]}
        for name in (SUBSET_PRIMARY, SUBSET_BURST)
    ]
    # `add` sets an object member whether it exists or not (a weight may be left out when 0).
    sets = [
        {"op": "add", "path": f"{base}/{ref.positions[name]}/weight", "value": value}
        for name, value in desired.as_dict().items()
    ]
    return tests + sets


class IstioActuator:
    name = "istio"

    def __init__(
        self,
        namespace: str,
        virtual_service: str,
        *,
        context: str = "",
        kubeconfig: str = "",
        timeout: float = 5.0,
    ) -> None:
        self.namespace = namespace
        self.virtual_service = virtual_service
        self.context = context
        self.kubeconfig = kubeconfig
        self.timeout = timeout
        self.target = f"virtualservice {namespace}/{virtual_service}"
        self._api: Any = None

    async def read(self) -> Snapshot:
        obj = await self._call("get", self._get)
        ref = find_route(obj)
        weights, exact = weights_of(ref)
        return Snapshot(weights, ref, exact, annotations_of(obj))

    async def write(self, seen: Snapshot, desired: Weights) -> None:
        ref = seen.token
        assert isinstance(ref, RouteRef)
        try:
            await self._call("patch", lambda: self._patch(weight_patch(ref, desired)))
        except ActuatorError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ApiException) and cause.status == 422):
                raise
            raise await self._after_rejection(ref, exc) from exc

    async def _after_rejection(self, ref: RouteRef, rejected: ActuatorError) -> ActuatorError:
        """A 422 does not say whether a `test` failed (kube-apiserver drops that text): look."""
        now = await self._call("get", self._get)
        if _destinations_changed(ref, now):
            return ActuatorError(
                ActuatorErrorKind.CONFLICT, f"changed since it was read ({rejected.detail})"
            )
        return rejected

    async def close(self) -> None:
        if self._api is not None:
            await asyncio.to_thread(self._api.api_client.close)

    def _get(self) -> Any:
        return self._client().get_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            self.virtual_service,
            _request_timeout=self.timeout,
        )

    def _patch(self, patch: list[dict[str, Any]]) -> Any:
        return self._client().patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            self.virtual_service,
            patch,
            field_manager=FIELD_MANAGER,
            _content_type=JSON_PATCH,
            _request_timeout=self.timeout,
        )

    def _client(self) -> Any:
        if self._api is None:
            self._api = _custom_objects_api(self.context, self.kubeconfig)
        return self._api

    async def _call(self, verb: str, fn: Any) -> Any:
        # The kubernetes client is synchronous; a thread keeps the event loop (and /healthz)
        # answering while a call waits out its timeout.
        try:
            return await asyncio.to_thread(fn)
        except ActuatorError:
            raise
        except Exception as exc:
            raise _translate(verb, exc) from exc


def _custom_objects_api(context: str, kubeconfig: str) -> Any:
    return client.CustomObjectsApi(api_client(context, kubeconfig))


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
    if status == 409:  # a stale resourceVersion (a 422 is told apart in `write`, by re-reading)
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
