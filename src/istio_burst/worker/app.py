"""The worker's HTTP API."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from istio_burst.core.contracts import HashMessage
from istio_burst.core.http_errors import JSONBytesResponse, error_response, install_error_handlers
from istio_burst.core.metrics import StatusCounterMiddleware, metrics_endpoint
from istio_burst.core.redis import create_client, ping_reason
from istio_burst.worker import metrics
from istio_burst.worker.hashing import hash_string
from istio_burst.worker.publisher import BatchPublisher, PublishError
from istio_burst.worker.settings import WorkerSettings

log = logging.getLogger(__name__)

# Documented in the OpenAPI schema; validated by hand below because the hand-written check is
# several times cheaper than building a model per request on the hot path.
HASH_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["str"],
    "properties": {"str": {"type": "string", "description": "the text to hash"}},
}


class BadInputError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def read_limited_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadInputError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise BadInputError(413, f"body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadInputError(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_hash_request(content_type: str | None, body: bytes) -> str:
    """The text to hash, or BadInputError saying exactly what is wrong with the request."""
    media_type = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise BadInputError(415, f"send JSON with Content-Type: application/json, not {media_type}")
    if not body:
        raise BadInputError(400, 'empty body: send {"str": "<text>"}')
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadInputError(400, f"body is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadInputError(
            422, f'body must be a JSON object {{"str": ...}}, not {_json_type(data)}'
        )
    if "str" not in data:
        raise BadInputError(422, 'field "str" is missing')
    text = data["str"]
    if not isinstance(text, str):
        raise BadInputError(422, f'field "str" must be a string, not {_json_type(text)}')
    return text


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {
        dict: "an object",
        list: "an array",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
    }.get(type(value), type(value).__name__)


def create_app(settings: WorkerSettings) -> FastAPI:
    client = create_client(settings.redis_url, timeout=settings.publish_timeout)
    publisher = BatchPublisher(client, settings.channel, settings.publish_timeout)
    cluster = settings.cluster_name

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        publisher.start()
        reason = await ping_reason(client)
        metrics.REDIS_UP.set(0 if reason else 1)
        if reason:
            log.warning(
                "redis not reachable at start; will answer 503 until it is",
                extra={"reason": reason},
            )
        yield
        await publisher.stop()
        await client.aclose()

    app = FastAPI(
        title="String Hashr worker",
        version="1.0",
        lifespan=lifespan,
        default_response_class=JSONBytesResponse,
    )
    install_error_handlers(app)
    app.add_middleware(StatusCounterMiddleware, counter=metrics.REQUESTS)

    @app.post(
        "/",
        summary="Hash a string and publish PREFIX+hash on Redis",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": HASH_REQUEST_SCHEMA}},
            }
        },
        responses={
            200: {"description": "published; the body is the message as published"},
            400: {"description": "empty body or not JSON"},
            413: {"description": "body over the limit"},
            415: {"description": "not application/json"},
            422: {"description": "JSON without a string field str"},
            503: {"description": "Redis did not confirm the publish"},
        },
    )
    async def hash_and_publish(request: Request) -> Response:
        try:
            body = await read_limited_body(request, settings.max_body_bytes)
            text = parse_hash_request(request.headers.get("content-type"), body)
        except BadInputError as bad:
            return error_response(bad.status, bad.detail)
        started = time.perf_counter()
        value = settings.prefix + hash_string(text)
        metrics.HASH_SECONDS.observe(time.perf_counter() - started)
        message = HashMessage(
            value=value, cluster=cluster, worker=settings.worker_name, published_at=time.time()
        )
        payload = message.encode()
        try:
            await publisher.publish(payload)
        except PublishError as exc:
            return error_response(503, str(exc))
        return Response(payload, media_type="application/json")

    @app.get("/", response_class=PlainTextResponse, summary="Liveness: the process answers")
    async def liveness() -> str:
        return "ok"

    @app.get("/_healthz", summary="Readiness: 200 only while Redis answers")
    async def readiness() -> Response:
        reason = await ping_reason(client, timeout=min(1.0, settings.publish_timeout))
        metrics.REDIS_UP.set(0 if reason else 1)
        if reason:
            return JSONBytesResponse({"status": "unavailable", "reason": reason}, status_code=503)
        return JSONBytesResponse({"status": "ok"})

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    return app
