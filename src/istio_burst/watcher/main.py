"""`istio-burst watcher` (and its commands for people: `status`, `override`)."""

from __future__ import annotations

from istio_burst.core.server import run_service
from istio_burst.watcher.app import create_app
from istio_burst.watcher.commands import SUBCOMMANDS
from istio_burst.watcher.settings import WatcherSettings as Settings

__all__ = ["SUBCOMMANDS", "Settings", "run"]


def run(settings: Settings) -> int:
    return run_service("watcher", settings, create_app)
