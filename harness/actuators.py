"""The watcher's actuators used directly by a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from istio_burst.watcher.actuators import Actuator

A = TypeVar("A", bound=Actuator)


@asynccontextmanager
async def closing(actuator: A) -> AsyncIterator[A]:
    """The actuator, closed after (its HTTP client's connections with it), however it ends."""
    try:
        yield actuator
    finally:
        await actuator.close()
