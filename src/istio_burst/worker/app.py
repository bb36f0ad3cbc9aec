"""The worker's HTTP app: POST / (hot path), GET / (liveness), /_healthz, /metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from istio_burst.core.http_errors import (
    JSONBytesResponse,
    install_error_handlers,
    readiness_response,
)
from istio_burst.core.metrics import StatusCounterMiddleware, metrics_endpoint
from istio_burst.core.redis import create_client
from istio_burst.worker import metrics
from istio_burst.worker.endpoint import HASH_OPERATION, HashEndpoint
from istio_burst.worker.publisher import Publisher
from istio_burst.worker.settings import WorkerSettings

log = logging.getLogger(__name__)


class WorkerAPI(FastAPI):
    """FastAPI, except that POST / goes straight to the hash endpoint.

    Ahead of FastAPI's middleware stack (error, telemetry and body-limit layers, routing), which
    together cost more than the endpoint itself. The endpoint counts its own responses and never
    raises; everything else goes through FastAPI and StatusCounterMiddleware as usual.
    """

    hash_endpoint: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] == "POST":
            await self.hash_endpoint(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: WorkerSettings) -> FastAPI:
    # One client for publishing and readiness, so readiness answers for the publishing path.
    client = create_client(settings.redis_url, timeout=settings.publish_timeout, retries=0)
    publisher = Publisher(client, settings.channel, settings.publish_timeout)
    metrics.PUBLISH_IN_FLIGHT.set_function(lambda: publisher.in_flight)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reason = await publisher.unavailable_reason()
        if reason:
            log.warning(
                "redis not reachable at start; will answer 503 until it is",
                extra={"reason": reason},
            )
        yield
        await publisher.stop()

    app = WorkerAPI(
        title="String Hashr worker",
        version="1.0",
        lifespan=lifespan,
        default_response_class=JSONBytesResponse,
        # Metrics are Prometheus; skip the OpenTelemetry check FastAPI makes on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    app.add_middleware(StatusCounterMiddleware, counter=metrics.REQUESTS)
    app.hash_endpoint = HashEndpoint(settings, publisher)
    app.openapi = _with_hash_operation(app.openapi)  # type: ignore[method-assign]

    @app.get("/", response_class=PlainTextResponse, summary="Liveness: the process answers")
    async def liveness() -> str:
        return "ok"

    @app.get("/_healthz", summary="Readiness: 200 only while publishing on Redis works")
    async def readiness() -> Response:
        return readiness_response(await publisher.unavailable_reason())

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    return app


def _with_hash_operation(openapi: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """The schema FastAPI builds from its routes, plus POST /, which bypasses the routes."""

    def schema() -> dict[str, Any]:
        document = openapi()
        document.setdefault("paths", {}).setdefault("/", {})["post"] = HASH_OPERATION
        return document

    return schema
