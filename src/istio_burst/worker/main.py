"""`istio-burst worker`."""

from __future__ import annotations

from istio_burst.core.server import run_service
from istio_burst.worker.app import create_app
from istio_burst.worker.settings import WorkerSettings as Settings

__all__ = ["Settings", "run"]


def run(settings: Settings) -> int:
    # The worker never uses the client's address or scheme: skip X-Forwarded-* handling.
    return run_service("worker", settings, create_app, proxy_headers=False)
