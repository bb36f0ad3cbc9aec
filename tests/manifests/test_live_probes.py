"""Every probe in the manifests, asked of the real process, started with the manifest's settings.

Only what depends on this machine is replaced: the port (a free one), the addresses of Redis and
Prometheus (real ones started here), and the watcher's actuator: `istio` needs a Kubernetes API
server, which cannot run on these machines, so it runs with `haproxy` against a real HAProxy (the
probes' paths do not depend on the actuator). Redis runs with the manifest's own arguments.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.haproxy import HAProxyServer
from harness.ports import free_port
from harness.processes import ISTIO_BURST, ManagedProcess, require_binary
from harness.prometheus import PrometheusServer
from harness.redis_server import RedisServer
from tests.manifests.manifests import (
    DEPENDENT_VAR,
    K8S,
    OVERLAYS,
    SECRET_STAND_IN,
    Obj,
    Rendered,
    command_of,
    container_port,
    containers,
    kustomize,
    name_of,
    resolved_env,
)


def our_workloads() -> list[tuple[str, str]]:
    """(overlay, deployment) for every Deployment that runs our code, known at collection."""
    return [
        (overlay, name_of(deployment))
        for overlay in OVERLAYS
        for deployment in kustomize(K8S / "overlays" / overlay)
        if deployment["kind"] == "Deployment" and any(command_of(c) for c in containers(deployment))
    ]


WORKLOADS = our_workloads()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus with nothing to scrape: the watcher's query reads an empty result."""
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), targets={}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HAProxyServer]:
    """A real HAProxy (the demo's config) for the watcher's actuator; no worker behind it."""
    nowhere = f"127.0.0.1:{free_port()}"
    server = HAProxyServer(tmp_path_factory.mktemp("haproxy"), nowhere, nowhere).start()
    yield server
    server.stop()


@dataclass(frozen=True)
class Backends:
    redis: RedisServer
    prometheus: PrometheusServer
    proxy: HAProxyServer


@pytest.fixture
def backends(
    redis_server: RedisServer, prometheus: PrometheusServer, proxy: HAProxyServer
) -> Backends:
    return Backends(redis_server, prometheus, proxy)


def local_env(deployment: Obj, container: Obj, backends: Backends) -> dict[str, str]:
    env = resolved_env(deployment, container)
    env.update(HOST="127.0.0.1", PORT=str(free_port()), LOG_FORMAT="text")
    if "REDIS_URL" in env:
        env["REDIS_URL"] = backends.redis.host_port
    if "PROMETHEUS_URL" in env:
        env["PROMETHEUS_URL"] = backends.prometheus.url
    if env.get("ACTUATOR") == "istio":
        env["ACTUATOR"] = "haproxy"
        env["HAPROXY_RUNTIME_API"] = backends.proxy.runtime_api
        env.pop("LEADER_ELECTION", None)  # a Lease needs the Kubernetes API: one watcher here
    return env


def test_every_workload_of_ours_is_probed() -> None:
    assert sorted(WORKLOADS) == [
        ("burst", "worker-deployment"),
        ("primary", "frontend-deployment"),
        ("primary", "istiowatcher-deployment"),
        ("primary", "worker-deployment"),
    ]


@pytest.mark.parametrize(("overlay", "deployment_name"), WORKLOADS)
def test_http_probes_answer_200_on_the_real_service(
    overlays: dict[str, Rendered],
    overlay: str,
    deployment_name: str,
    backends: Backends,
    tmp_path: Path,
) -> None:
    deployment = overlays[overlay].get("Deployment", deployment_name)
    (container,) = containers(deployment)
    command = command_of(container)
    assert command is not None
    env = local_env(deployment, container, backends)
    proc = ManagedProcess(command, [ISTIO_BURST, command], tmp_path, env=env).start()
    try:
        for kind in ("livenessProbe", "readinessProbe"):
            probe = container[kind]["httpGet"]
            assert container_port(container, probe["port"]) is not None
            url = f"http://127.0.0.1:{env['PORT']}{probe['path']}"
            # Readiness may take a round (Redis ping, a first reading): wait, as the kubelet does.
            proc.wait_http_ok(url, timeout=20)
            assert httpx.get(url, timeout=5).status_code == 200, f"{kind} {url}"
    finally:
        proc.stop()


def redis_says(port: int, *commands: bytes) -> bytes:
    """Redis's answer to the last of `commands` sent on one connection (b"" if none)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            answer = b""
            for command in commands:
                sock.sendall(command + b"\r\n")
                answer = sock.recv(64)
            return answer
    except OSError:
        return b""


def test_redis_runs_with_the_manifests_arguments_and_its_probe_port_answers(
    primary: Rendered, tmp_path: Path
) -> None:
    deployment = primary.get("Deployment", "redis-cache")
    (container,) = containers(deployment)
    for kind in ("livenessProbe", "readinessProbe"):
        assert container_port(container, container[kind]["tcpSocket"]["port"]) == {
            "name": "redis",
            "containerPort": 6379,
        }
    # The image's entrypoint runs `redis-server <args>`; here on a free port, in tmp_path
    # standing in for the /data emptyDir.
    # The kubelet expands $(REDIS_PASSWORD) in the arguments from the container's env (Secret).
    env = resolved_env(deployment, container)
    args = [DEPENDENT_VAR.sub(lambda m: env[m.group(1)], arg) for arg in container["args"]]
    port = free_port()
    argv = [require_binary("redis-server"), *args]
    argv += ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    proc = ManagedProcess("redis-from-manifest", argv, tmp_path).start()
    try:
        proc.wait_until(lambda: bool(redis_says(port, b"PING")), 10, "redis answers")
        assert redis_says(port, b"PING").startswith(b"-NOAUTH"), "Redis must want the password"
        auth = b"AUTH " + SECRET_STAND_IN.encode()
        assert redis_says(port, auth, b"PING") == b"+PONG\r\n"
    finally:
        proc.stop()
