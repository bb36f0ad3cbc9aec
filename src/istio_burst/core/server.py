"""Running an ASGI app: uvicorn with uvloop and httptools within the HTTP limits, graceful
shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from istio_burst.core.http_errors import error_response
from istio_burst.core.http_limits import HTTPLimits, LimitedHttpToolsProtocol
from istio_burst.core.logging import configure_logging
from istio_burst.core.settings import HTTPServiceSettings

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore(signum: int, frame: object) -> None:
    """Stands in for the default action of a stop signal uvicorn already handled."""


API_DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def without_api_docs(app: ASGIApp) -> ASGIApp:
    """The app, answering 404 on FastAPI's documentation paths (API_DOCS=false)."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in API_DOCS_PATHS:
            await error_response(404, "Not Found")(scope, receive, send)
        else:
            await app(scope, receive, send)

    return guarded


def serve(app: ASGIApp, settings: HTTPServiceSettings, *, proxy_headers: bool = True) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting, finish in-flight requests, return.

    Every connection lives within the settings' HTTP limits (core/http_limits.py), the cap on
    open connections included (uvicorn's `limit_concurrency` would miss websocket handshakes and
    refuse probes). uvicorn installs the
    signal handlers; logging was configured by the caller (log_config=None).
    `proxy_headers=False` skips uvicorn's X-Forwarded-* handling, for services that never look
    at the client's address or scheme (it costs a few percent per request).
    """
    limits = HTTPLimits(
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        max_connections=settings.max_connections,
    )
    config = uvicorn.Config(
        app if settings.api_docs else without_api_docs(app),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=LimitedHttpToolsProtocol.with_limits(limits),
        ws_max_size=settings.max_websocket_bytes,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, round(settings.graceful_timeout)),
        lifespan="on",
        proxy_headers=proxy_headers,
    )
    server = uvicorn.Server(config)
    # After a graceful stop uvicorn restores the handlers it found and re-raises the signal, so
    # with the defaults the process would die by SIGTERM (exit 143). A graceful stop is a success:
    # make the re-raised signal a no-op, and return normally (exit 0).
    previous = {sig: signal.signal(sig, _ignore) for sig in _STOP_SIGNALS}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if getattr(server, "started", True) is False:
        # Bind failure (port taken) and lifespan start-up failure end here: say so by exit code.
        raise SystemExit(3)


class StartupError(RuntimeError):
    """The service cannot start as configured; the message says what to do."""


S = TypeVar("S", bound=HTTPServiceSettings)


def run_service(
    name: str, settings: S, create_app: Callable[[S], Any], *, proxy_headers: bool = True
) -> int:
    """What every `istio-burst <service>` does: logs, effective settings, the app, serve."""
    configure_logging(name, settings.log_level, settings.log_format)
    log = logging.getLogger(f"istio_burst.{name}")
    settings.log_effective(log, name)
    try:
        app = create_app(settings)
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 2
    serve(app, settings, proxy_headers=proxy_headers)
    return 0
