"""What the watcher asks of the Kubernetes API, read from its code.

Every endpoint method of a `kubernetes.client` API class that a watcher module names (called, or
handed to a Watch) is looked up in the client itself: its HTTP method and path give the RBAC
group, resource and verb. The Role and the `kubectl auth can-i` proofs are held to this, so a new
call (Events, a Lease) is picked up without editing a test.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from kubernetes import client

WATCHER_PACKAGE = "istio_burst.watcher"
ACTUATORS = f"{WATCHER_PACKAGE}.actuators"
ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
# HTTP method -> RBAC verb, for a request naming one object / the collection.
NAMED_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
COLLECTION_VERBS = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}
ENDPOINT = re.compile(r"method='(\w+)',\s*resource_path='([^']+)'")


@dataclass(frozen=True, order=True)
class Use:
    """One RBAC permission: `verb` on `resource` of API group `group` ("" = core)."""

    group: str
    resource: str
    verb: str

    @property
    def target(self) -> str:
        """As `kubectl auth can-i --list` names it: `virtualservices.networking.istio.io`,
        `events`, `leases/status.coordination.k8s.io`."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def can_i(self, name: str = "") -> list[str]:
        """The arguments of `kubectl auth can-i` that ask for this, on object `name` if any."""
        resource, _, subresource = self.resource.partition("/")
        kind = f"{resource}.{self.group}" if self.group else resource
        args = [self.verb, f"{kind}/{name}" if name else kind]
        return args + ([f"--subresource={subresource}"] if subresource else [])

    def __str__(self) -> str:
        return f"{self.verb} {self.target}"


@cache
def endpoint(api_class: str, method: str) -> tuple[str, str] | None:
    """(HTTP method, path template) of `api_class.method`, or None if it is no API call."""
    serialize = getattr(getattr(client, api_class, None), f"_{method}_serialize", None)
    if serialize is None:
        return None
    found = ENDPOINT.findall(inspect.getsource(serialize))
    assert len(found) == 1, f"{api_class}.{method}: cannot read its endpoint"
    http_method, path = found[0]
    return http_method, path


def use_of(http_method: str, path: str, constants: Mapping[str, Any]) -> Use:
    """The permission a request needs. `{group}` and `{plural}` (CustomObjectsApi) are
    `constants`' GROUP and PLURAL."""
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest[:2] == ["namespaces", "{namespace}"]:
        rest = rest[2:]
    resource, named = rest[0], len(rest) > 1
    if len(rest) > 2:  # a subresource: status, scale, ...
        resource = f"{resource}/{rest[2]}"
    fill = {"{group}": "GROUP", "{plural}": "PLURAL"}
    group = str(constants[fill[group]]) if group in fill else group
    resource = resource.replace("{plural}", str(constants.get("PLURAL", "{plural}")))
    verbs = NAMED_VERBS if named else COLLECTION_VERBS
    return Use(group, resource, verbs[http_method])


def uses_in(source: str, constants: Mapping[str, Any]) -> set[Use]:
    """Every permission the calls in one module's source need (`constants`: the custom
    object's GROUP and PLURAL)."""
    assert "call_api(" not in source and "param_serialize(" not in source, (
        "a raw API call: this scan cannot tell what it needs"
    )
    api_classes = set(re.findall(r"\b(\w+Api)\(", source))
    watching = "watch=True" in source or "Watch(" in source
    uses = set()
    for method in set(re.findall(r"\.([a-z]\w*)\b", source)):
        found = {c: e for c in api_classes if (e := endpoint(c, method)) is not None}
        if not found:
            continue
        assert len(found) == 1, f"{method} is a method of {sorted(found)}: which one is called?"
        use = use_of(*next(iter(found.values())), constants)
        uses.add(use)
        if watching and use.verb == "list":
            uses.add(Use(use.group, use.resource, "watch"))
    return uses


def actuator_module(actuator: str) -> ModuleType:
    """The module of ACTUATOR=`actuator` ("istio", "gateway-api")."""
    return importlib.import_module(f"{ACTUATORS}.{actuator.replace('-', '_')}")


def watcher_uses(actuator: str) -> set[Use]:
    """Every permission the watcher needs with ACTUATOR=`actuator`: the calls of all its modules
    but the other actuators', its custom object being the actuator's GROUP and PLURAL."""
    chosen = actuator_module(actuator)
    custom_object = {"GROUP": chosen.GROUP, "PLURAL": chosen.PLURAL}
    package = importlib.import_module(WATCHER_PACKAGE)
    uses = set()
    for info in pkgutil.walk_packages(package.__path__, f"{WATCHER_PACKAGE}."):
        module = importlib.import_module(info.name)
        if (
            module is not chosen
            and info.name.startswith(f"{ACTUATORS}.")
            and (
                hasattr(module, "PLURAL")  # another actuator's object
            )
        ):
            continue
        uses |= uses_in(inspect.getsource(module), custom_object)
    return uses


def grants(role: Mapping[str, Any]) -> dict[Use, list[str]]:
    """What a Role allows: each permission with the object names it is limited to ([]: any)."""
    granted: dict[Use, list[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    names = granted.setdefault(Use(group, resource, verb), [])
                    names.extend(rule.get("resourceNames", []))
    return granted
