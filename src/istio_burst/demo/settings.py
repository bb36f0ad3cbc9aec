from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from istio_burst.core.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    """Ports and burst behaviour of the local demo. Env names are prefixed DEMO_ so that a
    service's own PORT or REDIS_URL in the environment cannot move a demo component."""

    model_config = {**ServiceSettings.model_config, "env_prefix": "DEMO_"}

    bind: str = Field(
        "127.0.0.1",
        description="address the components listen on (Redis and HAProxy's runtime API stay on "
        "127.0.0.1)",
    )
    frontend_port: int = Field(8080, ge=1, le=65535, description="the page (open this)")
    frontends: int = Field(
        1, ge=1, le=16, description="frontend replicas, on consecutive ports from frontend_port"
    )
    primary_port: int = Field(8081, ge=1, le=65535, description="worker of the primary side")
    burst_port: int = Field(8082, ge=1, le=65535, description="worker of the burst side")
    watcher_port: int = Field(8090, ge=1, le=65535, description="watcher /status /metrics")
    redis_port: int = Field(
        6380, ge=1, le=65535, description="redis-server started by the demo (on 127.0.0.1 only)"
    )
    redis_password: str = Field(
        "",
        pattern=r"^[^\s]*$",
        description="password of the demo's Redis, given to every service in REDIS_URL "
        "(default: a new random one at each start)",
    )
    mesh: Literal["haproxy", "istio"] = Field(
        "haproxy",
        description="the data plane: HAProxy (the watcher sets its weights), or istio: a local "
        "Kubernetes API, istiod and upstream Envoy (the watcher patches the VirtualService; "
        "runs from a clone of the repository, ./run demo --mesh istio)",
    )
    proxy_port: int = Field(
        8083, ge=1, le=65535, description="the data plane's proxy: the frontend sends here"
    )
    proxy_metrics_port: int = Field(
        8404,
        ge=1,
        le=65535,
        description="the proxy's metrics: HAProxy's exporter (/metrics), Envoy's admin",
    )
    proxy_api_port: int = Field(
        9999, ge=1, le=65535, description="HAProxy's runtime API (the watcher sets weights there)"
    )
    prometheus_port: int = Field(9090, ge=1, le=65535, description="Prometheus started by the demo")
    mode: Literal["switch", "overflow"] = Field("switch", description="watcher mode")
    high: float = Field(15, gt=0, description="req/s above which traffic bursts")
    low: float = Field(10, ge=0, description="req/s below which traffic returns to primary")
    stabilization_window: float = Field(
        10, ge=0, description="seconds the rate must stay low before returning to primary"
    )
    state_dir: Path = Field(
        Path(".demo"), description="where the demo keeps logs and data (wiped at each start)"
    )
    start_timeout: float = Field(30, gt=0, description="seconds each component may take to start")
