"""`istio-burst frontend`."""

from __future__ import annotations

from istio_burst.core.server import run_service
from istio_burst.frontend.app import create_app
from istio_burst.frontend.settings import FrontendSettings as Settings

__all__ = ["Settings", "run"]


def run(settings: Settings) -> int:
    # Exits 2 with a clear message when the npm-built page assets are missing.
    return run_service("frontend", settings, create_app)
