"""A stand-in for the Kubernetes API server, for the one resource the watcher touches.

No real API server can run on this machine (no container runtime, no kind/k3s), so this answers
the exact REST calls the `kubernetes` client makes for a namespaced custom object:

- GET   /apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/{name}  (Accept: JSON)
- PATCH the same path, Content-Type application/json-patch+json, an RFC 6902 operation list

like the real one: a bearer token is required (401 otherwise); errors are `Status` objects
(404 NotFound, 403 Forbidden, 409 Conflict, 5xx); a patch that fails to apply, a failed `test` op
included, gets what kube-apiserver's `handlers/patch.go` answers (`NewGenericServerResponse(422,
..., isUnexpectedResponse=false)`): 422, reason Invalid, only the generic message, an empty
`details`; the patch library's own text ("testing value ... failed") is dropped. Every write gets
a new resourceVersion; and every object written is checked against Istio 1.30's VirtualService
schema (tests/fixtures/istio), for unknown fields (which a real server would silently prune),
and for Istio's rule that a route's weights may not all be 0. Rejected writes are kept so a test
can assert there were none.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import orjson

from harness.http_server import BackgroundHTTPServer, send
from harness.istio_schemas import istio_errors

PATH = re.compile(
    r"^/apis/networking\.istio\.io/v1/namespaces/(?P<ns>[^/]+)/virtualservices/(?P<name>[^/?]+)"
    r"(?:\?(?P<query>.*))?$"
)
JSON_PATCH = "application/json-patch+json"
GENERIC_422 = "the server rejected our request due to an error in our request"
TOKEN = "watcher-test-token"

Obj = dict[str, Any]


@dataclass
class Request:
    method: str
    path: str
    content_type: str
    accept: str
    body: Any = None


class PatchError(Exception):
    """A JSON patch that does not apply; the text is the patch library's (kept for tests: the
    real server's answer leaves it out)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def virtual_service(
    primary: int = 100, burst: int = 0, name: str = "worker-virtual-service"
) -> Obj:
    """The worker VirtualService as the project's manifests define it."""
    host = "worker-service.default.svc.cluster.local"
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "worker"}},
        "spec": {
            "hosts": ["worker-service"],
            "gateways": ["mesh"],
            "http": [
                {
                    "route": [
                        {
                            "destination": {
                                "host": host,
                                "port": {"number": 80},
                                "subset": "primary",
                            },
                            "weight": primary,
                        },
                        {
                            "destination": {
                                "host": host,
                                "port": {"number": 80},
                                "subset": "burst",
                            },
                            "weight": burst,
                        },
                    ]
                }
            ],
        },
    }


class FakeKubeAPI(BackgroundHTTPServer):
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Obj] = {}
        self.requests: list[Request] = []
        self.written: list[Obj] = []  # every object a PATCH stored
        self.rejected: list[str] = []  # why writes were refused as invalid
        self.failed_patches: list[str] = []  # the patch library's text the answer leaves out
        self.fail: list[tuple[str, int]] = []  # (method, status) to answer next, in order
        self.delay = 0.0  # seconds before answering (timeouts)
        self.before_patch: Callable[[FakeKubeAPI], None] | None = None  # a concurrent edit
        self._resource_version = 1000
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api._handle(self, "GET")

            def do_PATCH(self) -> None:
                api._handle(self, "PATCH")

            def log_message(self, *_: object) -> None:
                pass

        super().__init__(Handler)

    # --- test-facing API -------------------------------------------------------------------

    def put(self, obj: Obj) -> None:
        with self._lock:
            self._store(copy.deepcopy(obj))

    def get(self, name: str = "worker-virtual-service", namespace: str = "default") -> Obj:
        with self._lock:
            return copy.deepcopy(self.objects[(namespace, name)])

    def edit(self, change: Callable[[Obj], None], name: str = "worker-virtual-service") -> None:
        """Someone else changes the object (a new resourceVersion, like any write)."""
        with self._lock:
            obj = copy.deepcopy(self.objects[("default", name)])
            change(obj)
            self._store(obj)

    def weights(self, name: str = "worker-virtual-service") -> tuple[int, int]:
        route = self.get(name)["spec"]["http"][0]["route"]
        by_subset = {d["destination"]["subset"]: d.get("weight", 0) for d in route}
        return by_subset["primary"], by_subset["burst"]

    def patches(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PATCH"]

    def watcher_env(self, workdir: Path) -> dict[str, str]:
        """The settings that point an `istio-burst watcher` process at this server."""
        return {
            "ACTUATOR": "istio",
            "KUBECONFIG": str(self.kubeconfig(workdir / "kubeconfig")),
            "NAMESPACE": "default",
        }

    def kubeconfig(self, path: Path, token: str = TOKEN) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "watcher", "user": {"token": token}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "watcher"}},
            ],
            "current-context": "fake",
        }
        path.write_bytes(orjson.dumps(config))  # JSON is YAML
        return path

    # --- the server ------------------------------------------------------------------------

    def _store(self, obj: Obj) -> None:
        self._resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self._resource_version)
        meta = obj["metadata"]
        self.objects[(meta.get("namespace", "default"), meta["name"])] = obj

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        request = Request(
            method,
            handler.path,
            handler.headers.get("Content-Type", ""),
            handler.headers.get("Accept", ""),
            orjson.loads(raw) if raw else None,
        )
        self.requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        status, body = self._answer(handler, request)
        send(handler, status, orjson.dumps(body), "application/json")

    def _answer(self, handler: BaseHTTPRequestHandler, request: Request) -> tuple[int, Obj]:
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            return status_object(401, "Unauthorized", "Unauthorized")
        match = PATH.match(request.path)
        if match is None:
            return status_object(
                404, "NotFound", "the server could not find the requested resource"
            )
        ns, name = match["ns"], match["name"]
        if self.fail and self.fail[0][0] == request.method:
            _, code = self.fail.pop(0)
            return injected(code, name)
        return self._serve(ns, name, request)

    def _serve(self, ns: str, name: str, request: Request) -> tuple[int, Obj]:
        if "application/json" not in request.accept:
            return status_object(406, "NotAcceptable", f"cannot serve {request.accept!r}")
        if request.method == "PATCH" and self.before_patch is not None:
            hook, self.before_patch = self.before_patch, None
            hook(self)
        with self._lock:
            current = self.objects.get((ns, name))
            if current is None:
                return not_found(name)
            if request.method == "GET":
                return 200, copy.deepcopy(current)
            return self._patch(current, request)

    def _patch(self, current: Obj, request: Request) -> tuple[int, Obj]:
        if request.content_type != JSON_PATCH:
            return status_object(
                415, "UnsupportedMediaType", f"expected {JSON_PATCH}, got {request.content_type}"
            )
        if not isinstance(request.body, list):
            return status_object(400, "BadRequest", "a JSON patch is a list of operations")
        try:
            patched = apply_patch(current, request.body)
        except PatchError as failed:
            # A failed `test`, an unknown op, a bad pointer: kube-apiserver finds all of them when
            # it applies the patch, and answers them alike (patch.go: the generic 422).
            self.failed_patches.append(failed.message)
            return rejected_patch()
        rejection = self._validate(current, patched)
        if rejection is not None:
            code, body = rejection
            self.rejected.append(str(body["message"]))
            return code, body
        self._store(patched)
        self.written.append(copy.deepcopy(patched))
        return 200, copy.deepcopy(patched)

    def _validate(self, before: Obj, after: Obj) -> tuple[int, Obj] | None:
        """None, or the answer the real server gives to the patched object.

        Schema and immutable-field errors come from kube-apiserver itself: 422 Invalid,
        '<Kind>.<group> "<name>" is invalid: <field>: <problem>' with one cause per problem.
        Istio's own rules (every weight 0) come from its validating webhook, whose denial
        kube-apiserver turns into a 400 'admission webhook "validation.istio.io" denied the
        request: configuration is invalid: ...' with no reason (tests/istio checks it against
        the real pair).
        """
        name = str(before["metadata"].get("name"))
        # The server manages the rest of metadata; the schema (and unknown fields) is Istio's.
        envelope: Obj = {k: after[k] for k in ("apiVersion", "kind", "spec") if k in after}
        name_only = {k: v for k, v in after["metadata"].items() if k in ("name", "namespace")}
        causes = [
            (_field_path(path), why)
            for path, _, why in (
                problem.partition(": ")
                for problem in istio_errors({**envelope, "metadata": name_only})
            )
        ]
        for key in ("apiVersion", "kind"):
            if after.get(key) != before.get(key):
                causes.append((key, "field is immutable"))
        if after["metadata"].get("name") != name:
            causes.append(("metadata.name", "field is immutable"))
        if causes:
            fields = ", ".join(f"{field}: {why}" for field, why in causes)
            details = {
                **_details(name),
                "kind": "VirtualService",
                "causes": [
                    {"reason": "FieldValueInvalid", "message": why, "field": field}
                    for field, why in causes
                ],
            }
            message = f'VirtualService.networking.istio.io "{name}" is invalid: {fields}'
            return status_object(422, "Invalid", message, details)
        for route in after.get("spec", {}).get("http", []):
            weights = [d.get("weight", 0) for d in route.get("route", [])]
            if len(weights) > 1 and not any(weights):
                return status_object(
                    400,
                    "",
                    'admission webhook "validation.istio.io" denied the request: '
                    "configuration is invalid: total destination weight = 0",
                )
        return None


def _field_path(path: str) -> str:
    """`spec/http/0/route/0/weight` as the API server names it: `spec.http[0].route[0].weight`."""
    out = ""
    for part in path.split("/"):
        out += f"[{part}]" if part.isdigit() else f".{part}" if out else part
    return out


def apply_patch(doc: Obj, operations: list[Any]) -> Obj:
    """RFC 6902 test/add/replace/remove, as much as the watcher may send; atomic (a copy)."""
    result = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "path" not in op or "op" not in op:
            raise PatchError(f"malformed operation {op!r}")
        *parents, last = _pointer(op["path"])
        target: Any = result
        try:
            for token in parents:
                target = target[int(token)] if isinstance(target, list) else target[token]
            if op["op"] == "test":
                found = target[int(last)] if isinstance(target, list) else target[last]
                if found != op["value"]:
                    raise PatchError(f"testing value {op['path']} failed: test failed")
            elif op["op"] in ("add", "replace"):
                _set(target, last, op)
            elif op["op"] == "remove":
                del target[int(last) if isinstance(target, list) else last]
            else:
                raise PatchError(f"unsupported op {op['op']!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise PatchError(f"jsonpatch {op['op']} operation does not apply: {exc!r}") from exc
    return result


def _set(target: Any, last: str, op: Obj) -> None:
    if isinstance(target, list) and op["op"] == "add":  # RFC 6902: add inserts
        index = len(target) if last == "-" else int(last)
        if not 0 <= index <= len(target):
            raise IndexError(f"list index {index} out of range")
        target.insert(index, op["value"])
    elif isinstance(target, list):
        target[int(last)] = op["value"]
    else:
        if op["op"] == "replace" and last not in target:
            raise KeyError(last)
        target[last] = op["value"]


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise PatchError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def status_object(
    code: int, reason: str, message: str, details: Obj | None = None
) -> tuple[int, Obj]:
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        **({"reason": reason} if reason else {}),  # metav1.Status omits an empty reason
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return code, body


def rejected_patch() -> tuple[int, Obj]:
    """kube-apiserver's answer to a JSON patch that does not apply (a failed `test` included)."""
    return status_object(422, "Invalid", GENERIC_422, details={})


def _details(name: str) -> Obj:
    return {"name": name, "group": "networking.istio.io", "kind": "virtualservices"}


def not_found(name: str) -> tuple[int, Obj]:
    return status_object(
        404, "NotFound", f'virtualservices.networking.istio.io "{name}" not found', _details(name)
    )


def injected(code: int, name: str) -> tuple[int, Obj]:
    if code == 404:
        return not_found(name)
    if code == 403:
        return status_object(
            403,
            "Forbidden",
            f'virtualservices.networking.istio.io "{name}" is forbidden: User '
            '"system:serviceaccount:default:istiowatcher" cannot patch resource '
            '"virtualservices" in API group "networking.istio.io" in the namespace "default"',
            _details(name),
        )
    if code == 409:
        return status_object(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on virtualservices.networking.istio.io "{name}": '
            "the object has been modified; please apply your changes to the latest version "
            "and try again",
            _details(name),
        )
    if code == 422:
        return rejected_patch()
    if code == 503:
        return status_object(
            503, "ServiceUnavailable", "the server is currently unable to handle the request"
        )
    return status_object(
        code, "InternalError", "Internal error occurred: etcdserver: request timed out"
    )
