"""`istio-burst watcher`."""

from __future__ import annotations

import logging

from istio_burst.core.logging import configure_logging
from istio_burst.core.server import serve
from istio_burst.watcher.app import create_app
from istio_burst.watcher.settings import WatcherSettings as Settings

__all__ = ["Settings", "run"]


def run(settings: Settings) -> int:
    configure_logging("watcher", settings.log_level, settings.log_format)
    settings.log_effective(logging.getLogger("istio_burst.watcher"), "watcher")
    serve(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        graceful_timeout=settings.graceful_timeout,
    )
    return 0
