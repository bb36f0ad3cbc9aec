"""Prometheus metrics plumbing: the /metrics response and per-status request counting."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OVER_CAPACITY = Counter(
    "hashr_http_over_capacity",
    "new requests (kind http) and websocket handshakes (kind websocket) answered 503 because "
    "more than MAX_CONNECTIONS connections were open",
    ["kind"],
)


def metrics_response(registry: CollectorRegistry = REGISTRY) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def metrics_endpoint(_: Request) -> Response:
    return metrics_response()


class StatusCounterMiddleware:
    """Counts every HTTP response by status code, 404s and 405s included.

    Pure ASGI (not BaseHTTPMiddleware) because it sits on the worker's hot path.
    """

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counter.labels(status=str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)
