"""Running an ASGI app: uvicorn with uvloop and httptools, graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
from typing import Any

import uvicorn

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
