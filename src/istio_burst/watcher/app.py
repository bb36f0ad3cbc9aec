"""The watcher's HTTP side (/healthz /livez /metrics /status /decisions) and the lifespan running
its loop (and, with LEADER_ELECTION, its Lease)."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import PlainTextResponse

from istio_burst.core.background import BackgroundTasks
from istio_burst.core.contracts import Role
from istio_burst.core.http_errors import (
    JSONBytesResponse,
    install_error_handlers,
    readiness_response,
)
from istio_burst.core.metrics import metrics_endpoint
from istio_burst.watcher.actuators import Actuator, DryRun
from istio_burst.watcher.actuators.haproxy import HAProxyActuator
from istio_burst.watcher.health import BurstHealthCheck
from istio_burst.watcher.ledger import Ledger, Sink
from istio_burst.watcher.local_overrides import RedisOverrides
from istio_burst.watcher.loop import Watcher
from istio_burst.watcher.notify import Notifier
from istio_burst.watcher.prometheus import PrometheusSource
from istio_burst.watcher.reporter import Reporter
from istio_burst.watcher.settings import WatcherSettings
from istio_burst.watcher.state import StatePublisher

log = logging.getLogger(__name__)


def build_actuator(settings: WatcherSettings) -> Actuator:
    # Imported by name: the Kubernetes ones pull in the kubernetes client (~0.6 s), needless
    # locally.
    actuator: Actuator
    kube = {
        "context": settings.kube_context,
        "kubeconfig": settings.kubeconfig,
        "timeout": settings.write_timeout,
    }
    if settings.actuator == "haproxy":
        actuator = HAProxyActuator(
            settings.haproxy_runtime_api, settings.haproxy_backend, settings.write_timeout
        )
    elif settings.actuator == "gateway-api":
        gateway_api = importlib.import_module("istio_burst.watcher.actuators.gateway_api")
        actuator = gateway_api.GatewayAPIActuator(
            settings.namespace,
            settings.http_route,
            primary_service=settings.primary_service,
            burst_service=settings.burst_service,
            **kube,
        )
    else:
        istio = importlib.import_module("istio_burst.watcher.actuators.istio")
        actuator = istio.IstioActuator(settings.namespace, settings.virtual_service, **kube)
    return DryRun(actuator) if settings.dry_run else actuator


def build_sinks(settings: WatcherSettings, actuator: Actuator) -> list[Sink]:
    sinks: list[Sink] = []
    # The Kubernetes actuators say which object they write; the Events are about that one.
    written = actuator.inner if isinstance(actuator, DryRun) else actuator
    regarding = getattr(written, "regarding", None)
    if regarding is not None and settings.kube_events:
        events = importlib.import_module("istio_burst.watcher.events")
        sinks.append(
            events.KubeEvents(
                regarding,
                instance=settings.identity,
                context=settings.kube_context,
                kubeconfig=settings.kubeconfig,
                timeout=settings.write_timeout,
            )
        )
    if settings.notify_url:
        sinks.append(
            Notifier(
                settings.notify_url,
                settings.notify_format,
                timeout=settings.notify_timeout,
                queue_size=settings.notify_queue,
            )
        )
    return sinks


def build_election(settings: WatcherSettings) -> Any:
    if not settings.leader_election:
        return None
    leader = importlib.import_module("istio_burst.watcher.leader")
    return leader.LeaseElection(
        settings.namespace,
        settings.lease_name,
        settings.identity,
        duration=settings.lease_duration,
        context=settings.kube_context,
        kubeconfig=settings.kubeconfig,
        timeout=settings.write_timeout,
    )


def build_watcher(settings: WatcherSettings) -> Watcher:
    source = PrometheusSource(settings.prometheus_url, settings.query_timeout)
    health = None
    if settings.burst_health_url or settings.burst_error_query:
        health = BurstHealthCheck(
            settings.burst_health_url,
            settings.burst_error_query,
            settings.max_burst_error_ratio,
            source,
            settings.query_timeout,
        )
    publisher = (
        StatePublisher(settings.redis_url, settings.write_timeout)
        if settings.publish_state
        else None
    )
    actuator = build_actuator(settings)
    policy = settings.policy()
    election = build_election(settings)
    reporter = Reporter(
        policy,
        actuator=actuator.name,
        target=actuator.target,
        prometheus_url=settings.prometheus_url,
        dry_run=settings.dry_run,
        publisher=publisher,
        ledger=Ledger(settings.decisions_kept, build_sinks(settings, actuator)),
        role=Role.SINGLE if election is None else Role.STANDBY,
    )
    # Locally (no routed object to annotate) the override is kept on Redis.
    local_overrides = (
        RedisOverrides(settings.redis_url, settings.write_timeout)
        if settings.actuator == "haproxy"
        else None
    )
    return Watcher(
        policy,
        source,
        actuator,
        reporter,
        query=settings.query,
        interval=settings.interval,
        max_backoff=settings.max_backoff,
        health=health,
        local_overrides=local_overrides,
        election=election,
        acceptance_deadline=settings.acceptance_deadline,
    )


async def close_watcher(watcher: Watcher) -> None:
    await watcher.actuator.close()
    await watcher.source.close()
    if watcher.health is not None:
        await watcher.health.close()
    if watcher.local_overrides is not None:
        await watcher.local_overrides.close()
    for sink in watcher.reporter.ledger.sinks:
        await sink.close()
    if watcher.election is not None:
        await watcher.election.close()
    await watcher.reporter.close()


def create_app(settings: WatcherSettings) -> FastAPI:
    watcher = build_watcher(settings)
    stop = asyncio.Event()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        election = watcher.election
        tasks = BackgroundTasks()
        if election is not None:
            tasks.start(election.run(stop), "watcher-lease")
        tasks.start(watcher.run(stop), "watcher-loop")
        yield
        # SIGTERM: let the current round finish (each call in it is bounded), then close.
        stop.set()
        await tasks.stop(grace=settings.graceful_timeout)
        if election is not None:
            await election.release()  # the other replica takes over at once
        await close_watcher(watcher)
        log.info("watcher stopped")

    app = FastAPI(
        title="String Hashr istiowatcher",
        version="1.0",
        lifespan=lifespan,
        default_response_class=JSONBytesResponse,
    )
    install_error_handlers(app)

    @app.get("/healthz", summary="Readiness: 200 while readings and writes succeed")
    async def healthz() -> JSONBytesResponse:
        reason = watcher.not_ready_reason()
        return readiness_response(reason)

    @app.get(
        "/livez",
        response_class=PlainTextResponse,
        summary="Liveness: the process answers (use this, not /healthz, for a liveness probe: "
        "a Prometheus outage must not restart the watcher)",
    )
    async def livez() -> str:
        return "ok"

    @app.get("/status", summary="The watcher's state as JSON (the same the page shows)")
    async def status() -> JSONBytesResponse:
        return JSONBytesResponse(watcher.state.as_dict())

    @app.get(
        "/decisions",
        summary="The decision ledger: the last `limit` records, oldest first (JSON)",
    )
    async def decisions(limit: int = Query(50, ge=1, le=10_000)) -> JSONBytesResponse:
        records = watcher.reporter.ledger.last(limit)
        return JSONBytesResponse({"decisions": [r.model_dump(mode="json") for r in records]})

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    return app
