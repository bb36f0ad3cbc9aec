"""The worker's HTTPRoute (Gateway API v1), changed through the Kubernetes API.

For Istio ambient (a waypoint) and any other Gateway API implementation. The route's rule that has
backendRefs to both Services, primary and burst (named in settings), carries the weights. Only
those two backendRefs' `weight` is ever written, as an RFC 6902 JSON patch that first `test`s
both entries as read (see `kube.CustomObject.patch_tested`). A rule that also sends traffic
anywhere else (another backendRef with a weight above 0) is refused: its split is not ours.

Gateway API weights are relative (0..1,000,000, default 1): they are read normalised to percent
and written as percentages.

Every read also says whether the route is in force (`Acceptance`): APPLIED only when, for every
parentRef, every controller's entry in status.parents[] has Accepted=True and ResolvedRefs=True
observed at the route's current metadata.generation (or later); REFUSED when such an entry has
either condition False (e.g. ResolvedRefs BackendNotFound: the spec then answers the share meant
for that backend with 500s), or when Istio in ambient mode says in its ResolvedWaypoints condition
that no waypoint will apply the route (it keeps that condition True and says so only in the
message: `NOT_RESPECTED`); else PENDING.

RBAC: the watcher uses exactly the verbs in `VERBS` on `httproutes.gateway.networking.k8s.io`.
"""

from __future__ import annotations

from typing import Any

from istio_burst.core.contracts import SUBSET_BURST, SUBSET_PRIMARY
from istio_burst.watcher.actuators import (
    Acceptance,
    AcceptanceState,
    ActuatorError,
    ActuatorErrorKind,
)
from istio_burst.watcher.actuators.kube import VERBS as KUBE_VERBS
from istio_burst.watcher.actuators.kube import RouteActuator, WeightedPair, generation_of

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
KIND = "HTTPRoute"
VERBS = KUBE_VERBS  # what the watcher's Role grants on PLURAL
PLURAL = "httproutes"
MAX_WEIGHT = 1_000_000
DEFAULT_WEIGHT = 1  # a backendRef without a weight (the CRD's default)
REQUIRED_CONDITIONS = ("Accepted", "ResolvedRefs")
WAYPOINTS_CONDITION = "ResolvedWaypoints"  # Istio's, in ambient mode, for a route on a Service
# What istiod's ResolvedWaypoints message says when neither the parent Service nor its namespace
# names a waypoint (label istio.io/use-waypoint): the route is stored and ignored.
NOT_RESPECTED = "route will not be respected"

Obj = dict[str, Any]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _service_name(ref: Obj, namespace: str) -> str | None:
    """The name of a backendRef to a core Service in the route's namespace, else None."""
    if ref.get("group", "") != "" or ref.get("kind", "Service") != "Service":
        return None
    if ref.get("namespace", namespace) != namespace:
        return None
    name = ref.get("name")
    return name if isinstance(name, str) else None


def find_rule(obj: Any, services: dict[str, str]) -> WeightedPair:
    """The rule with backendRefs to both Services (`services`: subset -> Service name)."""
    obj = _as_dict(obj)
    namespace = _as_dict(obj.get("metadata")).get("namespace", "")
    rules = _as_dict(obj.get("spec")).get("rules")
    if not isinstance(rules, list):
        raise ActuatorError(ActuatorErrorKind.INVALID, "spec.rules is missing: no rule to weigh")
    by_name = {name: subset for subset, name in services.items()}
    for i, rule in enumerate(rules):
        refs = [_as_dict(r) for r in _as_list(_as_dict(rule).get("backendRefs"))]
        positions: dict[str, int] = {}
        for j, ref in enumerate(refs):
            subset = by_name.get(_service_name(ref, namespace) or "")
            if subset is not None and subset not in positions:
                positions[subset] = j
        if len(positions) < 2:
            continue
        others = [
            str(ref.get("name"))
            for j, ref in enumerate(refs)
            if j not in positions.values() and ref.get("weight", DEFAULT_WEIGHT) != 0
        ]
        if others:
            raise ActuatorError(
                ActuatorErrorKind.INVALID,
                f"spec.rules[{i}] also sends traffic to {', '.join(others)}, not only to "
                f"{services[SUBSET_PRIMARY]} and {services[SUBSET_BURST]}; refusing to change "
                "its weights",
            )
        entries = {s: refs[j] for s, j in positions.items()}
        return WeightedPair(f"/spec/rules/{i}/backendRefs", positions, entries)
    raise ActuatorError(
        ActuatorErrorKind.INVALID,
        f"no rule has backendRefs to both Services {services[SUBSET_PRIMARY]} and "
        f"{services[SUBSET_BURST]}",
    )


# --- Is the route in force? status.parents[] ------------------------------------------------


def _parent_key(ref: Obj, namespace: str) -> tuple[Any, ...]:
    """A parentRef with the API's defaults filled in, comparable with status.parents[].parentRef."""
    return (
        ref.get("group", GROUP),
        ref.get("kind", "Gateway"),
        ref.get("namespace", namespace),
        ref.get("name"),
        ref.get("sectionName"),
        ref.get("port"),
    )


def _describe_parent(key: tuple[Any, ...]) -> str:
    _, kind, namespace, name, section, port = key
    where = f"{kind} {namespace}/{name}"
    if section:
        where += f" section {section}"
    if port:
        where += f" port {port}"
    return where


def _entry_verdict(entry: Obj, generation: int) -> tuple[AcceptanceState, str]:
    """One controller's report on one parentRef, for the route's current generation."""
    conditions = {
        c.get("type"): c for c in (_as_dict(c) for c in _as_list(entry.get("conditions")))
    }
    controller = entry.get("controllerName", "a controller")
    waiting = []
    for kind in REQUIRED_CONDITIONS:
        condition = conditions.get(kind)
        observed = condition.get("observedGeneration", 0) if condition else 0
        if condition is None or not isinstance(observed, int) or observed < generation:
            waiting.append(f"{kind} not yet reported for generation {generation}")
            continue
        status = condition.get("status")
        if status == "False":
            reason, message = condition.get("reason", ""), condition.get("message", "")
            return AcceptanceState.REFUSED, f"{controller}: {kind} False ({reason}) {message}"
        if status != "True":
            waiting.append(f"{kind} {status}")
    waypoints = conditions.get(WAYPOINTS_CONDITION) or {}
    message = str(waypoints.get("message", ""))
    if NOT_RESPECTED in message and waypoints.get("observedGeneration", 0) >= generation:
        return AcceptanceState.REFUSED, f"{controller}: {WAYPOINTS_CONDITION} {message}"
    if waiting:
        return AcceptanceState.PENDING, f"{controller}: {', '.join(waiting)}"
    return AcceptanceState.APPLIED, ""


def acceptance_of(obj: Any) -> Acceptance:
    """Whether every parentRef's controllers report the route as read in force."""
    obj = _as_dict(obj)
    namespace = _as_dict(obj.get("metadata")).get("namespace", "")
    generation = generation_of(obj)
    parent_refs = [_as_dict(p) for p in _as_list(_as_dict(obj.get("spec")).get("parentRefs"))]
    if not parent_refs:
        return Acceptance(AcceptanceState.REFUSED, "spec.parentRefs is empty: attached to nothing")
    reports = [_as_dict(p) for p in _as_list(_as_dict(obj.get("status")).get("parents"))]
    refused, pending = [], []
    for parent in parent_refs:
        key = _parent_key(parent, namespace)
        where = _describe_parent(key)
        entries = [
            e for e in reports if _parent_key(_as_dict(e.get("parentRef")), namespace) == key
        ]
        if not entries:
            pending.append(f"{where}: no controller has reported on it yet")
        for entry in entries:
            state, detail = _entry_verdict(entry, generation)
            if state is AcceptanceState.REFUSED:
                refused.append(f"{where}: {detail}")
            elif state is AcceptanceState.PENDING:
                pending.append(f"{where}: {detail}")
    if refused:
        return Acceptance(AcceptanceState.REFUSED, "; ".join(refused))
    if pending:
        return Acceptance(AcceptanceState.PENDING, "; ".join(pending))
    return Acceptance(AcceptanceState.APPLIED, f"accepted at generation {generation}")


class GatewayAPIActuator(RouteActuator):
    name = "gateway-api"
    group, version, plural, kind = GROUP, VERSION, PLURAL, KIND
    default_weight, max_weight = DEFAULT_WEIGHT, MAX_WEIGHT

    def __init__(
        self,
        namespace: str,
        http_route: str,
        *,
        primary_service: str,
        burst_service: str,
        context: str = "",
        kubeconfig: str = "",
        timeout: float = 5.0,
    ) -> None:
        super().__init__(
            namespace, http_route, context=context, kubeconfig=kubeconfig, timeout=timeout
        )
        self.services = {SUBSET_PRIMARY: primary_service, SUBSET_BURST: burst_service}

    def find(self, obj: Any) -> WeightedPair:
        return find_rule(obj, self.services)

    def acceptance(self, obj: Any) -> Acceptance:
        return acceptance_of(obj)
