"""`istio-burst worker`."""

from __future__ import annotations

import logging

from istio_burst.core.logging import configure_logging
from istio_burst.core.server import serve
from istio_burst.worker.app import create_app
from istio_burst.worker.settings import WorkerSettings as Settings

__all__ = ["Settings", "run"]


def run(settings: Settings) -> int:
    configure_logging("worker", settings.log_level, settings.log_format)
    settings.log_effective(logging.getLogger("istio_burst.worker"), "worker")
    serve(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        graceful_timeout=settings.graceful_timeout,
        proxy_headers=False,  # the worker never uses the client's address or scheme
    )
    return 0
