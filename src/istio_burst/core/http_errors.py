"""One JSON error shape for every HTTP service: {"error": <code>, "detail": <what is wrong>}."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    431: "request_header_fields_too_large",
    503: "unavailable",
}


class JSONBytesResponse(Response):
    """A JSON response rendered with orjson (FastAPI's ORJSONResponse is deprecated)."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


def error_body(status: int, detail: str) -> bytes:
    return orjson.dumps({"error": _CODES.get(status, "error"), "detail": detail})


def error_response(status: int, detail: str) -> JSONBytesResponse:
    return JSONBytesResponse(
        {"error": _CODES.get(status, "error"), "detail": detail}, status_code=status
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONBytesResponse:
        response = error_response(exc.status_code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONBytesResponse:
        return error_response(422, "; ".join(_describe(e) for e in exc.errors()))


def _describe(error: object) -> str:
    if isinstance(error, dict):
        where = ".".join(str(p) for p in error.get("loc", ()))
        return f"{where}: {error.get('msg', 'invalid')}"
    return str(error)


def readiness_response(reason: str | None) -> JSONBytesResponse:
    """A readiness probe's answer: 200 `{"status": "ok"}`, or 503 with the reason it is not."""
    if reason:
        return JSONBytesResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONBytesResponse({"status": "ok"})
