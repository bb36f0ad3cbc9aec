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

from istio_burst.core.contracts import SUBSET_BURST, SUBSET_PRIMARY
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind
from istio_burst.watcher.actuators.kube import VERBS as KUBE_VERBS
from istio_burst.watcher.actuators.kube import RouteActuator, WeightedPair

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


class IstioActuator(RouteActuator):
    name = "istio"
    group, version, plural, kind = GROUP, VERSION, PLURAL, KIND
    default_weight, max_weight = 0, MAX_WEIGHT

    def find(self, obj: Any) -> WeightedPair:
        return find_route(obj)
