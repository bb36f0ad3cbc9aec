"""Running an ASGI app: uvicorn with uvloop and httptools, graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import uvicorn

from istio_burst.core.logging import configure_logging

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore(signum: int, frame: object) -> None:
    """Stands in for the default action of a stop signal uvicorn already handled."""


def serve(
    app: Any,
    *,
    host: str,
    port: int,
    graceful_timeout: float = 10.0,
    proxy_headers: bool = True,
) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting, finish in-flight requests, return.

    uvicorn installs the signal handlers; logging was configured by the caller (log_config=None).
    `proxy_headers=False` skips uvicorn's X-Forwarded-* handling, for services that never look
    at the client's address or scheme (it costs a few percent per request).
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, round(graceful_timeout)),
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


class HTTPServiceSettings(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def graceful_timeout(self) -> float: ...
    @property
    def log_level(self) -> str: ...
    @property
    def log_format(self) -> str: ...

    def log_effective(self, logger: logging.Logger, service: str) -> None: ...


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
    serve(
        app,
        host=settings.host,
        port=settings.port,
        graceful_timeout=settings.graceful_timeout,
        proxy_headers=proxy_headers,
    )
    return 0
