"""The watcher's settings: one field each, env var = field name upper-cased."""

from __future__ import annotations

import socket
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from istio_burst.core.contracts import PROXY_BACKEND, SUBSET_BURST, SUBSET_PRIMARY
from istio_burst.core.settings import (
    GracefulTimeout,
    HTTPServiceSettings,
    Port,
    RedisURL,
    redact_webhook,
)
from istio_burst.watcher.actuators.haproxy import parse_runtime_api
from istio_burst.watcher.decide import Policy

# Kubernetes default. Each cluster has its own Prometheus, and a destination proxy reports its
# requests (reporter="destination") to the Prometheus of the cluster it runs in: once traffic
# moves to the burst cluster, the primary's Prometheus would see the worker's rate collapse and
# the watcher would flip straight back. The frontend's sidecar sits in the primary cluster and
# reports every request it sends (reporter="source"), wherever it is served. The rate window
# must hold at least 4 scrapes, or rate() often has fewer than two samples and returns nothing:
# 1m covers Istio's sample Prometheus at 15 s (4 x 15 s).
KUBERNETES_QUERY = (
    'sum(rate(istio_requests_total{reporter="source",'
    'source_workload="frontend-deployment",'
    'destination_service="worker-service.default.svc.cluster.local"}[1m]))'
)

# Istio ambient (ACTUATOR=gateway-api): no sidecars. ztunnel reports only TCP metrics; the
# waypoint, which applies the HTTPRoute, reports istio_requests_total with reporter="waypoint" and
# the standard labels (source_workload, source_workload_namespace, destination_service,
# destination_service_name, destination_service_namespace, destination_workload, source_cluster,
# destination_cluster, response_code, ...). The waypoint runs in the primary cluster and counts
# every request it routes, to either Service: the Service asked for (worker-service) or the
# backend it chose (worker-primary, worker-burst) may be named, so all three are matched.
AMBIENT_QUERY = (
    'sum(rate(istio_requests_total{reporter="waypoint",'
    'source_workload="frontend-deployment",'
    'destination_service_name=~"worker-service|worker-primary|worker-burst"}[1m]))'
)

# Local demo and docker-compose: the requests HAProxy, the local data plane, passed to the workers'
# backend, as the sidecars count them in Kubernetes; scraped every second, so a 5 s window holds
# 5 scrapes.
_BACKEND = f'proxy="{PROXY_BACKEND}"'
_BURST = f'{_BACKEND},server="{SUBSET_BURST}"'
_PRIMARY = f'{_BACKEND},server="{SUBSET_PRIMARY}"'
LOCAL_QUERY = f"sum(rate(haproxy_backend_http_requests_total{{{_BACKEND}}}[5s]))"

# Local demo and docker-compose: is burst failing on its own, in HAProxy's view of its servers?
# 1 when its health checks have kept server `burst` down for 3 s; else the share of its answers
# that were 5xx, at its lowest over the last 3 s (a brief blip is not a failure; 0/0 while nothing
# goes there is NaN: no evidence). Nothing at all (no evidence) while server `primary` failed a
# health check or was down in the last 10 s: both sides failing together (their shared Redis
# restarting) is not a burst failure, and burst must not be punished for it.
_BURST_DOWN_3S = f'1 - max_over_time(haproxy_server_status{{{_BURST},state="UP"}}[3s])'
_BURST_5XX_RATIO_3S = (
    "min_over_time(("
    f'sum(rate(haproxy_server_http_responses_total{{{_BURST},code="5xx"}}[5s]))'
    f" / sum(rate(haproxy_server_http_responses_total{{{_BURST}}}[5s]))"
    ")[3s:1s])"
)
_PRIMARY_TROUBLE_10S = (
    f"increase(haproxy_server_check_failures_total{{{_PRIMARY}}}[10s]) > 0"
    f' or min_over_time(haproxy_server_status{{{_PRIMARY},state="UP"}}[10s]) < 1'
)
LOCAL_BURST_ERROR_QUERY = (
    f"max(({_BURST_DOWN_3S}) or ({_BURST_5XX_RATIO_3S})) unless on() ({_PRIMARY_TROUBLE_10S})"
)

# Kubernetes example (the burst cluster's name as Istio's clusterName): 5xx share of the
# frontend's requests served by the burst cluster, from the frontend's (primary) side.
KUBERNETES_BURST_ERROR_QUERY_EXAMPLE = (
    'sum(rate(istio_requests_total{reporter="source",source_workload="frontend-deployment",'
    'destination_service="worker-service.default.svc.cluster.local",'
    'destination_cluster="burst",response_code=~"5.."}[1m]))'
    ' / sum(rate(istio_requests_total{reporter="source",source_workload="frontend-deployment",'
    'destination_service="worker-service.default.svc.cluster.local",'
    'destination_cluster="burst"}[1m]))'
)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def pod_namespace(path: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The namespace this pod runs in (from its service account), else `default`."""
    try:
        return path.read_text().strip() or "default"
    except OSError:
        return "default"


class WatcherSettings(HTTPServiceSettings):
    port: Port = 8090

    prometheus_url: str = Field("http://localhost:9090", description="Prometheus base URL")
    query: str = Field(
        KUBERNETES_QUERY,
        min_length=1,
        description="PromQL giving the worker's request rate in req/s (default with "
        "ACTUATOR=gateway-api: what Istio ambient's waypoint counts, "
        + AMBIENT_QUERY
        + "; local demo: "
        + LOCAL_QUERY
        + ")",
    )
    query_timeout: float = Field(
        1.0,
        gt=0,
        description="seconds one whole Prometheus query (or burst-health check) may take, "
        "from connecting to the last byte of the answer",
    )
    empty_result_value: float | Literal["error"] = Field(
        0,
        description="req/s an empty query result (no series) stands for, or 'error' to treat "
        "it as a failed reading",
    )
    interval: float = Field(1.0, gt=0, description="seconds between readings")

    mode: Literal["switch", "overflow"] = Field(
        "switch",
        description="switch: everything to burst above HIGH, back below LOW; overflow: only "
        "the load over PRIMARY_CAPACITY goes to burst, in steps of STEP percent",
    )
    high: float = Field(15, gt=0, description="switch: req/s above which traffic bursts")
    low: float = Field(
        10,
        ge=0,
        description="switch: req/s below which traffic returns to primary (after the "
        "stabilization window); overflow: primary steps back only while its share stays under "
        "PRIMARY_CAPACITY x LOW/HIGH",
    )
    primary_capacity: float = Field(
        15, gt=0, description="overflow: req/s primary serves before the excess goes to burst"
    )
    step: int = Field(10, ge=1, le=100, description="overflow: percent moved per change")
    tolerance: float = Field(
        0.1,
        ge=0,
        le=1,
        description="overflow: fraction primary may run over PRIMARY_CAPACITY before another "
        "step to burst (like the Kubernetes HPA's 0.1)",
    )
    min_dwell: float = Field(
        5, ge=0, description="seconds after any change before the next load-driven change"
    )
    stabilization_window: float = Field(
        10,
        ge=0,
        description="seconds the rate must stay low before traffic moves back towards primary",
    )
    outage_policy: Literal["hold", "primary", "burst"] = Field(
        "hold",
        description="once readings have been unusable (Prometheus down, timing out, NaN, ...) "
        "for OUTAGE_AFTER seconds: hold the weights, send everything to primary, or everything "
        "to burst (fail open: pay for capacity rather than drop requests)",
    )
    outage_after: float = Field(
        3.0, ge=0, description="seconds of unusable readings before OUTAGE_POLICY acts"
    )
    max_failures: int = Field(
        3, ge=1, description="failures in a row (readings or writes) before reporting not-ready"
    )

    actuator: Literal["istio", "gateway-api", "haproxy"] = Field(
        "istio",
        description="istio: patch the worker VirtualService (sidecar mode); gateway-api: patch "
        "the worker HTTPRoute (Istio ambient, any Gateway API implementation); haproxy: set the "
        "server weights through HAProxy's runtime API (the local demo and docker-compose)",
    )
    haproxy_runtime_api: str = Field(
        "",
        description="haproxy: the runtime API (stats socket, level admin): tcp://host:port "
        "or unix:///path/to.sock",
    )
    haproxy_backend: str = Field(
        PROXY_BACKEND,
        min_length=1,
        description="haproxy: the backend whose servers primary and burst carry the weights "
        '(the local queries name it too: proxy="workers")',
    )
    namespace: str = Field(
        default_factory=pod_namespace,
        description="namespace of the VirtualService or HTTPRoute (default: the pod's own, "
        "else default)",
    )
    virtual_service: str = Field(
        "worker-virtual-service", min_length=1, description="the worker's VirtualService"
    )
    http_route: str = Field(
        "worker-route", min_length=1, description="gateway-api: the worker's HTTPRoute"
    )
    primary_service: str = Field(
        "worker-primary",
        min_length=1,
        description="gateway-api: the Service of the primary side's workers (a backendRef)",
    )
    burst_service: str = Field(
        "worker-burst",
        min_length=1,
        description="gateway-api: the Service of the burst side's workers (a backendRef)",
    )
    acceptance_deadline: float = Field(
        30,
        gt=0,
        description="seconds a written route may stay not yet accepted by its controller "
        "before traffic goes back to primary (gateway-api; the others report nothing)",
    )
    kube_context: str = Field(
        "", description="kubeconfig context to use (default: in-cluster, else current context)"
    )
    kubeconfig: str = Field(
        "",
        description="kubeconfig file(s), ':'-separated (default: in-cluster, else ~/.kube/config)",
    )
    write_timeout: float = Field(
        5.0, gt=0, description="seconds one Kubernetes, HAProxy or Redis call may take"
    )
    max_backoff: float = Field(
        30.0, gt=0, description="longest wait between retries of a failing write"
    )
    dry_run: bool = Field(False, description="log the weights it would write; write nothing")

    redis_url: RedisURL = Field(
        "localhost:6379",
        description="Redis for the watcher's state (the page shows it)",
    )
    publish_state: bool = Field(
        True, description="publish the watcher's state on Redis for the frontend's page"
    )

    burst_health_url: str = Field(
        "", description="readiness URL of the burst side; 200 means healthy"
    )
    burst_error_query: str = Field(
        "",
        description="PromQL giving the error ratio (0..1) of requests sent to burst; above "
        "MAX_BURST_ERROR_RATIO burst is unhealthy, empty or NaN is no evidence (the local demo "
        "reads HAProxy's health checks and 5xx counts of its burst server)",
    )
    max_burst_error_ratio: float = Field(
        0.2, ge=0, le=1, description="error ratio above which burst counts as unhealthy"
    )
    burst_backoff: float = Field(
        30,
        ge=0,
        description="seconds to keep traffic off burst after it was unhealthy (the first time; "
        "doubled for each further unhealthy episode in a row, up to BURST_BACKOFF_MAX)",
    )
    burst_backoff_max: float = Field(
        600,
        ge=0,
        description="the most the burst back-off grows to while burst keeps failing; the count "
        "starts again once burst has carried traffic, healthy, for BURST_BACKOFF seconds",
    )
    graceful_timeout: GracefulTimeout = 5.0

    decisions_kept: int = Field(
        100, ge=1, le=10_000, description="decision records kept for GET /decisions"
    )
    kube_events: bool = Field(
        True,
        description="istio, gateway-api: write each decision record as a Kubernetes Event "
        "(events.k8s.io/v1) regarding the VirtualService or HTTPRoute",
    )
    notify_url: str = Field(
        "", description="webhook that gets each decision record as a JSON POST (empty: none)"
    )
    notify_format: Literal["json", "slack"] = Field(
        "json",
        description='json: the record itself; slack: {"text": "..."} for a Slack-compatible '
        "incoming webhook",
    )
    notify_timeout: float = Field(
        5.0, gt=0, description="seconds one notification may take, all its retries included"
    )
    notify_queue: int = Field(
        100, ge=1, description="notifications waiting at most; more are dropped and counted"
    )
    leader_election: bool = Field(
        False,
        description="istio, gateway-api: replicas elect one leader through a coordination.k8s.io "
        "Lease; "
        "only the leader reads, decides and writes, the others stand by (ready)",
    )
    lease_name: str = Field(
        "istiowatcher", min_length=1, description="the Lease (namespace NAMESPACE)"
    )
    lease_duration: float = Field(
        10.0,
        ge=3,
        le=15,
        description="seconds a leader that stopped renewing keeps the Lease (a standby takes "
        "over after this)",
    )
    identity: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="this replica's name in the Lease and in Events (default: the host name, "
        "the pod's name in Kubernetes)",
    )

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> WatcherSettings:
        problem = thresholds_problem(self.low, self.high)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _backoff_cap_above_backoff(self) -> WatcherSettings:
        if self.burst_backoff_max < self.burst_backoff:
            raise ValueError(
                f"BURST_BACKOFF_MAX ({self.burst_backoff_max:g}) must not be below "
                f"BURST_BACKOFF ({self.burst_backoff:g})"
            )
        return self

    @model_validator(mode="after")
    def _ambient_query_for_routes(self) -> WatcherSettings:
        # No sidecars in ambient mode: the default sidecar query would find nothing.
        if self.actuator == "gateway-api" and "query" not in self.model_fields_set:
            self.query = AMBIENT_QUERY
        return self

    @model_validator(mode="after")
    def _haproxy_needs_its_api(self) -> WatcherSettings:
        if self.actuator == "haproxy":
            if not self.haproxy_runtime_api:
                raise ValueError(
                    "ACTUATOR=haproxy needs HAPROXY_RUNTIME_API (tcp://host:port or "
                    "unix:///path/to.sock)"
                )
            parse_runtime_api(self.haproxy_runtime_api)  # a ValueError says what is wrong
        return self

    @model_validator(mode="after")
    def _election_needs_kubernetes(self) -> WatcherSettings:
        if self.leader_election and self.actuator == "haproxy":
            raise ValueError(
                "LEADER_ELECTION needs ACTUATOR=istio or gateway-api (a Lease in Kubernetes)"
            )
        return self

    def public_dict(self) -> dict[str, Any]:
        out = super().public_dict()
        out["notify_url"] = redact_webhook(self.notify_url) if self.notify_url else ""
        return out

    def policy(self) -> Policy:
        """The decision's parameters: each is the setting of the same name."""
        same_name = {
            f.name: getattr(self, f.name) for f in fields(Policy) if f.name != "empty_value"
        }
        empty = self.empty_result_value
        return Policy(**same_name, empty_value=None if empty == "error" else float(empty))


def thresholds_problem(low: float, high: float) -> str | None:
    """The one rule for LOW and HIGH (the watcher's settings and the demo use it)."""
    return f"LOW ({low:g}) must not be above HIGH ({high:g})" if low > high else None
