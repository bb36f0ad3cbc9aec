"""POST /: the hot path, as a plain ASGI handler.

FastAPI's routing, dependency solving and request objects cost more than hashing and publishing
together, so this one endpoint reads the ASGI messages itself. Every bad input gets a 4xx in the
shared JSON error shape; a 200 is sent only after Redis confirmed the PUBLISH.
"""

from __future__ import annotations

import time

import orjson
from prometheus_client import Counter
from starlette.types import Receive, Scope, Send

from istio_burst.core.contracts import HashMessage
from istio_burst.core.http_errors import error_response
from istio_burst.worker import metrics
from istio_burst.worker.hashing import hash_string
from istio_burst.worker.publisher import Publisher, PublishError
from istio_burst.worker.settings import WorkerSettings

# Documented in the OpenAPI schema (see app.py); checked by hand in parse_hash_request.
HASH_REQUEST_SCHEMA: dict[str, object] = {
    "type": "object",
    "required": ["str"],
    "properties": {"str": {"type": "string", "description": "the text to hash"}},
}
HASH_OPERATION: dict[str, object] = {
    "summary": "Hash a string and publish PREFIX+hash on Redis",
    "operationId": "hash_and_publish",
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": HASH_REQUEST_SCHEMA}},
    },
    "responses": {
        "200": {"description": "published; the body is the message exactly as published"},
        "400": {"description": "empty body, or not UTF-8 JSON"},
        "413": {"description": "body over MAX_BODY_BYTES"},
        "415": {"description": "Content-Type is not JSON"},
        "422": {"description": 'JSON, but not an object with a string field "str"'},
        "503": {"description": "Redis did not confirm the publish in time"},
    },
}


class BadInputError(Exception):
    def __init__(self, status: int, detail: str, *, close: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.close = close  # the rest of the body is not worth reading: drop the connection


class ClientGoneError(Exception):
    """The client disconnected before sending its whole body."""


def check_media_type(content_type: bytes) -> None:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    if media_type and media_type != b"application/json" and not media_type.endswith(b"+json"):
        shown = media_type.decode("latin-1")
        raise BadInputError(415, f"send JSON with Content-Type: application/json, not {shown}")


def check_declared_length(declared: bytes | None, limit: int) -> None:
    if declared is None:
        return  # chunked: counted while reading
    if not declared.isdigit():
        raise BadInputError(400, "Content-Length is not a number", close=True)
    if int(declared) > limit:
        raise BadInputError(413, f"body is {int(declared)} bytes; the limit is {limit}", close=True)


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, or BadInputError(413) as soon as it passes `limit` bytes."""
    message = await receive()
    if message["type"] != "http.request":
        raise ClientGoneError
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the common case: one message
        if len(body) > limit:
            raise BadInputError(413, f"body is over the limit of {limit} bytes", close=True)
        return body
    chunks = [body]
    size = len(body)
    while True:
        if size > limit:
            raise BadInputError(413, f"body is over the limit of {limit} bytes", close=True)
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGoneError
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            if size > limit:
                raise BadInputError(413, f"body is over the limit of {limit} bytes", close=True)
            return b"".join(chunks)


def parse_hash_request(body: bytes) -> str:
    """The text to hash, or BadInputError saying exactly what is wrong with the body."""
    if not body:
        raise BadInputError(400, 'empty body: send {"str": "<text>"}')
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadInputError(400, f"body is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadInputError(
            422, f'body must be a JSON object {{"str": ...}}, not {json_type(data)}'
        )
    if "str" not in data:
        raise BadInputError(422, 'field "str" is missing')
    text = data["str"]
    if not isinstance(text, str):
        raise BadInputError(422, f'field "str" must be a string, not {json_type(text)}')
    return text


def json_type(value: object) -> str:
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


class HashEndpoint:
    """ASGI app for POST /: validate, hash, publish, answer with the message as published."""

    def __init__(self, settings: WorkerSettings, publisher: Publisher) -> None:
        self.publisher = publisher
        self.limit = settings.max_body_bytes
        self.prefix = settings.prefix
        self.cluster = settings.cluster_name
        self.worker = settings.worker_name
        self._counters: dict[int, Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            text = await self._read_text(scope, receive)
        except BadInputError as bad:
            await self._send_error(scope, receive, send, bad.status, bad.detail, close=bad.close)
            return
        except ClientGoneError:
            return  # nobody to answer

        started = time.perf_counter()
        value = self.prefix + hash_string(text)
        metrics.HASH_SECONDS.observe(time.perf_counter() - started)
        payload = HashMessage(
            value=value, cluster=self.cluster, worker=self.worker, published_at=time.time()
        ).encode()
        try:
            await self.publisher.publish(payload)
        except PublishError as exc:
            await self._send_error(scope, receive, send, 503, str(exc))
            return
        self._counter(200).inc()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(payload)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _read_text(self, scope: Scope, receive: Receive) -> str:
        content_type = b""
        declared: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                declared = value
        check_declared_length(declared, self.limit)
        check_media_type(content_type)
        return parse_hash_request(await read_body(receive, self.limit))

    async def _send_error(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        detail: str,
        *,
        close: bool = False,
    ) -> None:
        response = error_response(status, detail)
        if close:
            response.headers["connection"] = "close"
        self._counter(status).inc()
        await response(scope, receive, send)

    def _counter(self, status: int) -> Counter:
        counter = self._counters.get(status)
        if counter is None:
            counter = self._counters[status] = metrics.REQUESTS.labels(status=str(status))
        return counter
