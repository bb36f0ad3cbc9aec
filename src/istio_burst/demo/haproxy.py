"""Running HAProxy as the local data plane, for the demo, the tests and the benchmarks.

The config is one file in the package, `haproxy.cfg` (docker-compose mounts the same file): its
addresses are environment variables with compose's values as defaults, so running it locally is
copying it and setting `HAPROXY_*` (see `proxy_env`).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx

from istio_burst.core.contracts import PROXY_BACKEND
from istio_burst.watcher.actuators.haproxy import parse_runtime_api

CONFIG_NAME = "haproxy.cfg"
BACKEND = PROXY_BACKEND  # the backend in the config, and the watcher's default
# The runtime API (level admin, no authentication: `set server addr` could send the traffic
# anywhere) listens on loopback only, whatever address the demo's other components bind.
API_HOST = "127.0.0.1"


def config_template() -> str:
    """The package's HAProxy config (the one docker-compose mounts)."""
    return resources.files("istio_burst.demo").joinpath(CONFIG_NAME).read_text()


def prepare_config(config_dir: Path) -> Path:
    """Write the config into `config_dir` (where the demo keeps what it ran); returns its path."""
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / CONFIG_NAME
    path.write_text(config_template())
    return path


@dataclass(frozen=True, slots=True)
class ProxyPorts:
    host: str  # every port below listens on this address
    port: int  # the data plane: the frontend's PROCESSOR_URL
    metrics_port: int  # Prometheus exporter on /metrics
    api_port: int  # the runtime API (level admin, on API_HOST): the watcher's HAPROXY_RUNTIME_API

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def metrics_address(self) -> str:
        return f"{self.host}:{self.metrics_port}"

    @property
    def runtime_api(self) -> str:
        return f"tcp://{API_HOST}:{self.api_port}"


def proxy_env(ports: ProxyPorts, primary: str, burst: str) -> dict[str, str]:
    """The variables the config reads; `primary`/`burst` are the workers' `host:port`."""
    return {
        "HAPROXY_BIND": f"{ports.host}:{ports.port}",
        "HAPROXY_METRICS_BIND": ports.metrics_address,
        "HAPROXY_RUNTIME_BIND": f"ipv4@{API_HOST}:{ports.api_port}",
        "HAPROXY_PRIMARY": primary,
        "HAPROXY_BURST": burst,
    }


def haproxy_command(binary: str, config_path: Path) -> list[str]:
    """argv for HAProxy in the foreground (-db), logging to stdout."""
    return [binary, "-db", "-f", str(config_path)]


def runtime_command(runtime_api: str, command: str, timeout: float = 5.0) -> str:
    """One command on the runtime API, as an operator would send it with socat; the answer."""
    api = parse_runtime_api(runtime_api)
    family, address = (
        (socket.AF_UNIX, api.path) if api.path else (socket.AF_INET, (api.host, api.port))
    )
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(command.encode() + b"\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer.decode("utf-8", "replace").strip()


def is_ready(ports: ProxyPorts, timeout: float = 1.0) -> bool:
    """True once the exporter answers and the runtime API gives a weight."""
    try:
        if httpx.get(f"http://{ports.metrics_address}/metrics", timeout=timeout).status_code != 200:
            return False
        answer = runtime_command(ports.runtime_api, f"get weight {BACKEND}/primary", timeout)
    except (httpx.HTTPError, OSError):
        return False
    return "(initial" in answer
