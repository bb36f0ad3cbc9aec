"""`istio-burst watcher`."""

from __future__ import annotations

from istio_burst.core.server import run_service
from istio_burst.watcher.app import create_app
from istio_burst.watcher.settings import WatcherSettings as Settings

__all__ = ["Settings", "run"]


def run(settings: Settings) -> int:
    return run_service("watcher", settings, create_app)
