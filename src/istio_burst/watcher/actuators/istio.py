"""The worker's VirtualService, changed through the Kubernetes API with the `kubernetes` client.

Only the `weight` of the two destinations (subsets primary and burst) of one HTTP route is ever
written, as an RFC 6902 JSON patch that first `test`s both destination entries against what was
read: if anyone changed them in between, the API server applies nothing (a CONFLICT: the watcher
decides again at once; see `kube.CustomObject.patch_tested`). Nothing else in the object is sent,
so other fields edited concurrently are untouched.

Whether a write is in force is not verified: Istio's only report on it, the `Reconciled`
condition, is off by default (PILOT_ENABLE_STATUS), experimental, and its observedGeneration does
not follow the object's (istio/istio#31931). Reads say UNVERIFIED.

RBAC: the watcher uses exactly the verbs in `VERBS` on `virtualservices.networking.istio.io`.
"""

from __future__ import annotations

from typing import Any

from istio_burst.core.contracts import SUBSET_BURST, SUBSET_PRIMARY, Weights
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind, Snapshot
from istio_burst.watcher.actuators.kube import VERBS as KUBE_VERBS
from istio_burst.watcher.actuators.kube import (
    CustomObject,
    Regarding,
    WeightedPair,
    annotations_of,
)

GROUP = "networking.istio.io"
VERSION = "v1"
KIND = "VirtualService"
VERBS = KUBE_VERBS  # what the watcher's Role grants on PLURAL
PLURAL = "virtualservices"


# Istio has no upper bound of its own; a weight counts as 0 when left out.
MAX_WEIGHT = 2**31 - 1


def find_route(obj: Any) -> WeightedPair:
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
        return WeightedPair(f"/spec/http/{i}/route", positions, entries)
    raise ActuatorError(
        ActuatorErrorKind.INVALID,
        "no HTTP route has destinations with subsets primary and burst",
    )


def _destinations_changed(ref: WeightedPair, obj: Any) -> bool:
    """Whether either destination entry (its weight included) differs from `ref`'s read."""
    try:
        return find_route(obj) != ref
    except ActuatorError:
        return True  # the route itself is gone or reshaped: certainly not what was read


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
        self.target = f"virtualservice {namespace}/{virtual_service}"
        self.regarding = Regarding(f"{GROUP}/{VERSION}", KIND, namespace, virtual_service)
        self._object = CustomObject(
            GROUP,
            VERSION,
            PLURAL,
            namespace,
            virtual_service,
            context=context,
            kubeconfig=kubeconfig,
            timeout=timeout,
        )

    async def read(self) -> Snapshot:
        obj = await self._object.get()
        ref = find_route(obj)
        weights, exact = ref.weights(default=0, maximum=MAX_WEIGHT)
        return Snapshot(weights, ref, exact, annotations=annotations_of(obj))

    async def write(self, seen: Snapshot, desired: Weights) -> None:
        ref = seen.token
        assert isinstance(ref, WeightedPair)
        await self._object.patch_tested(
            ref.patch(desired), lambda now: _destinations_changed(ref, now)
        )

    async def close(self) -> None:
        await self._object.close()
