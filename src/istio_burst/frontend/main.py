"""`istio-burst frontend`."""

from __future__ import annotations

import logging

from istio_burst.core.logging import configure_logging
from istio_burst.core.server import serve
from istio_burst.frontend.app import create_app
from istio_burst.frontend.assets import AssetsMissingError
from istio_burst.frontend.settings import FrontendSettings as Settings

__all__ = ["Settings", "run"]

log = logging.getLogger("istio_burst.frontend")


def run(settings: Settings) -> int:
    configure_logging("frontend", settings.log_level, settings.log_format)
    settings.log_effective(log, "frontend")
    try:
        app = create_app(settings)
    except AssetsMissingError as exc:
        log.error("cannot start: %s", exc)
        return 2
    serve(app, host=settings.host, port=settings.port, graceful_timeout=settings.graceful_timeout)
    return 0
