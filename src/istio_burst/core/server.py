"""Running an ASGI app: uvicorn with uvloop and httptools, graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

from typing import Any

import uvicorn


def serve(app: Any, *, host: str, port: int, graceful_timeout: float = 10.0) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting, finish in-flight requests, return.

    uvicorn installs the signal handlers; logging was configured by the caller (log_config=None).
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
    )
    server = uvicorn.Server(config)
    server.run()
    if getattr(server, "started", True) is False:
        # Bind failure (port taken) and lifespan start-up failure end here: say so by exit code.
        raise SystemExit(3)
