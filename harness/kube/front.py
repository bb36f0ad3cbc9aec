"""A recording, fault-injecting proxy in front of a real kube-apiserver, for the watcher's tests.

Every answer the watcher gets comes from the real API server (RBAC, schema validation, JSON-patch
`test` failures, resourceVersions, 401/403/404), except the few a real server cannot be made to
give on demand, which the proxy answers itself, in the real server's format:
- `fail`: a 409 Conflict, a 500 (etcd timed out) or a 503 (the server is shutting down),
  answered instead of forwarding the next request of that method;
- `delay`: a slow answer (timeouts);
- `before_patch`: someone else's edit landing between the watcher's read and its write;
- Istio's validating webhook (when istiod is not running): a patch that would leave every weight
  of a route at 0 is tried with `dryRun=All` first and refused as the webhook refuses it.
It also keeps what a test asserts on: every request, every object a PATCH stored, and every write
the server (or the webhook stand-in) rejected.

Each KubeFront works in a namespace of its own, holding the watcher's ServiceAccount, Role and
RoleBinding exactly as k8s/base/watcher/ defines them, and the worker VirtualService.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from harness.http_server import BackgroundHTTPServer, send
from harness.kube.cluster import LocalKube, kubeconfig_for

JSON_PATCH = "application/json-patch+json"
GENERIC_422 = "the server rejected our request due to an error in our request"
REPO = Path(__file__).resolve().parents[2]
WATCHER_RBAC = REPO / "k8s" / "base" / "watcher"
NATURAL = REPO / "istio-manifests" / "natural.yaml"
VS_NAME = "worker-virtual-service"
VS_API = "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices"
ISTIO_WEBHOOK_DENIAL = (
    'admission webhook "validation.istio.io" denied the request: '
    "configuration is invalid: total destination weight = 0"
)

Obj = dict[str, Any]
_namespaces = itertools.count(1)


@dataclass
class Request:
    method: str
    path: str
    content_type: str
    accept: str
    body: Any = None


def virtual_service(
    primary: int = 100, burst: int = 0, name: str = VS_NAME, namespace: str = "default"
) -> Obj:
    """The worker VirtualService as istio-manifests/natural.yaml creates it, at these weights."""
    vs: Obj = yaml.safe_load(NATURAL.read_text())
    vs["metadata"].update(name=name, namespace=namespace)
    weights = {"primary": primary, "burst": burst}
    for entry in vs["spec"]["http"][0]["route"]:
        entry["weight"] = weights[entry["destination"]["subset"]]
    return vs


def status_object(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
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
    return body


def injected(code: int, name: str) -> tuple[Obj, dict[str, str]]:
    """The body and headers kube-apiserver answers with this code.

    503: what a server that is shutting down answers (WithWaitGroup), Retry-After included.
    500: an etcd error reaches the client as it is: no reason, etcd's own message, no causes.
    409: the watcher's patch carries no resourceVersion and the server retries etcd conflicts
    itself, so a real server does not give it this; it is here so that the watcher's handling of
    a Conflict, should one come, is tested too.
    """
    if code == 409:
        details = {"name": name, "group": "networking.istio.io", "kind": "virtualservices"}
        return status_object(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on virtualservices.networking.istio.io "{name}": '
            "the object has been modified; please apply your changes to the latest version "
            "and try again",
            details,
        ), {}
    if code == 503:
        return status_object(503, "ServiceUnavailable", "apiserver is shutting down"), {
            "Retry-After": "1"
        }
    return status_object(code, "", "etcdserver: request timed out"), {}


def weights_of(vs: Obj) -> tuple[int, int]:
    route = vs["spec"]["http"][0]["route"]
    by_subset = {d["destination"]["subset"]: d.get("weight", 0) for d in route}
    return by_subset["primary"], by_subset["burst"]


def _every_weight_zero(vs: Obj) -> bool:
    for route in vs.get("spec", {}).get("http", []):
        weights = [d.get("weight", 0) for d in route.get("route", [])]
        if len(weights) > 1 and not any(weights):
            return True
    return False


class KubeFront(BackgroundHTTPServer):
    """The proxy, and what a test does to the real server as an admin (put, edit, get)."""

    def __init__(self, kube: LocalKube, namespace: str | None = None) -> None:
        self.kube = kube
        self.namespace = namespace or f"watcher-{next(_namespaces)}-{int(time.time()) % 10000}"
        self.requests: list[Request] = []
        self.written: list[Obj] = []
        self.rejected: list[str] = []
        self.fail: list[tuple[str, int]] = []
        self.delay = 0.0
        self.before_patch: Callable[[KubeFront], None] | None = None
        self.istio_webhook_stand_in = True
        self._admin = kube.admin_client()
        self._upstream = httpx.Client(
            base_url=kube.server, verify=kube.tls(), timeout=30
        )  # no client certificate: the caller's Authorization header is who it is
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                front._handle(self, "GET")

            def do_PATCH(self) -> None:
                front._handle(self, "PATCH")

            def do_PUT(self) -> None:
                front._handle(self, "PUT")

            def do_POST(self) -> None:
                front._handle(self, "POST")

            def do_DELETE(self) -> None:
                front._handle(self, "DELETE")

            def log_message(self, *_: object) -> None:
                pass

        super().__init__(Handler)
        self._setup_namespace()

    # --- set-up -----------------------------------------------------------------------------

    def _setup_namespace(self) -> None:
        self._admin.post(
            "/api/v1/namespaces", json={"metadata": {"name": self.namespace}}
        ).raise_for_status()
        self.kube.kubectl(
            "apply",
            "--server-side",
            "-n",
            self.namespace,
            "-f",
            str(WATCHER_RBAC / "serviceaccount.yaml"),
            "-f",
            str(WATCHER_RBAC / "role.yaml"),
        )
        self.token = self.kube.service_account_token(self.namespace, "istiowatcher")

    def stop(self) -> None:
        super().stop()
        # Its VirtualServices go with it: an istiod watching the same API server would merge a
        # leftover one with any later route for the same host (the oldest wins).
        with contextlib.suppress(httpx.TransportError):  # a test that left the server down
            self.kube.delete_namespace(self.namespace, VS_API.format(ns=self.namespace))
        self._admin.close()
        self._upstream.close()

    # --- test-facing API, as the cluster admin -----------------------------------------------

    def _path(self, name: str) -> str:
        return f"{VS_API.format(ns=self.namespace)}/{name}"

    def put(self, obj: Obj) -> None:
        """Create the object, or replace what is there (a new resourceVersion either way)."""
        obj = copy.deepcopy(obj)
        obj["metadata"]["namespace"] = self.namespace
        obj["metadata"].pop("resourceVersion", None)
        name = obj["metadata"]["name"]
        current = self._admin.get(self._path(name))
        if current.status_code == 404:
            answer = self._admin.post(VS_API.format(ns=self.namespace), json=obj)
        else:
            obj["metadata"]["resourceVersion"] = current.json()["metadata"]["resourceVersion"]
            answer = self._admin.put(self._path(name), json=obj)
        answer.raise_for_status()

    def get(self, name: str = VS_NAME) -> Obj:
        answer = self._admin.get(self._path(name))
        answer.raise_for_status()
        obj: Obj = answer.json()
        return obj

    def delete(self, name: str = VS_NAME) -> None:
        self._admin.delete(self._path(name)).raise_for_status()

    def edit(self, change: Callable[[Obj], None], name: str = VS_NAME) -> None:
        """Someone else changes the object (an update with the resourceVersion they read)."""
        obj = self.get(name)
        change(obj)
        self._admin.put(self._path(name), json=obj).raise_for_status()

    def weights(self, name: str = VS_NAME) -> tuple[int, int]:
        return weights_of(self.get(name))

    def patches(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PATCH"]

    def kubeconfig(self, path: Path, token: str | None = None) -> Path:
        """A kubeconfig for the watcher's ServiceAccount (or `token`), through this proxy."""
        config = kubeconfig_for(
            self.url, "istiowatcher", {"token": token or self.token}, namespace=self.namespace
        )
        path.write_text(yaml.safe_dump(config))
        return path

    def watcher_env(self, workdir: Path) -> dict[str, str]:
        """The settings that point an `istio-burst watcher` process at this server."""
        return {
            "ACTUATOR": "istio",
            "KUBECONFIG": str(self.kubeconfig(workdir / "kubeconfig")),
            "NAMESPACE": self.namespace,
        }

    @property
    def target(self) -> str:
        """How the watcher names the VirtualService in logs and /status."""
        return f"virtualservice {self.namespace}/{VS_NAME}"

    # --- the proxy ---------------------------------------------------------------------------

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
        with self._lock:
            self.requests.append(request)
            failure = self.fail.pop(0) if self.fail and self.fail[0][0] == method else None
            hook = self.before_patch if method == "PATCH" else None
            if hook is not None:
                self.before_patch = None
        if self.delay:
            time.sleep(self.delay)
        if failure is not None:
            name = handler.path.split("?")[0].rsplit("/", 1)[-1]
            body, headers = injected(failure[1], name)
            send(handler, failure[1], orjson.dumps(body), "application/json", headers)
            return
        if hook is not None:
            hook(self)
        status, content_type, body_bytes = self._forward(handler, method, raw)
        if method == "PATCH":
            self._note_patch(status, body_bytes)
        send(handler, status, body_bytes, content_type)

    def _forward(
        self, handler: BaseHTTPRequestHandler, method: str, raw: bytes
    ) -> tuple[int, str, bytes]:
        headers = {
            name: value
            for name in ("Authorization", "Content-Type", "Accept", "User-Agent")
            if (value := handler.headers.get(name)) is not None
        }
        if method == "PATCH" and self.istio_webhook_stand_in and "virtualservices/" in handler.path:
            separator = "&" if "?" in handler.path else "?"
            trial = self._upstream.request(
                method, handler.path + separator + "dryRun=All", content=raw, headers=headers
            )
            if trial.is_success and _every_weight_zero(trial.json()):
                # kube-apiserver passes a webhook's denial on as a 400 with no reason
                # (tests/istio compares this answer with istiod's own).
                body = status_object(400, "", ISTIO_WEBHOOK_DENIAL)
                return 400, "application/json", orjson.dumps(body)
        try:
            answer = self._upstream.request(method, handler.path, content=raw, headers=headers)
        except httpx.TransportError as exc:  # the real server is down: the client sees a reset
            raise ConnectionResetError(str(exc)) from exc
        return (
            answer.status_code,
            answer.headers.get("Content-Type", "application/json"),
            answer.content,
        )

    def _note_patch(self, status: int, body: bytes) -> None:
        answer = orjson.loads(body) if body else {}
        if 200 <= status < 300:
            self.written.append(answer)
        elif status in (400, 422) and answer.get("message") != GENERIC_422:
            # A write the server refused for what it said, not a failed `test` (a race).
            self.rejected.append(str(answer.get("message")))
