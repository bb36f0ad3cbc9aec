"""Bounding what pages can make the frontend do: a rate per page, and coalesced broadcasts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """`rate` events a second on average, up to `rate` at once; beyond that, `take()` is False."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = rate
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class Coalesced:
    """Calls `send` at most once per `interval`; requests in between become one call at the end.

    `send` reads the current value when it runs, so the latest value wins and none is lost.
    """

    def __init__(self, send: Callable[[], Awaitable[None]], interval: float) -> None:
        self._send = send
        self._interval = interval
        self._last = -interval
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        if self._task is not None:
            return  # a call is already planned: it will send the value as it is then
        delay = max(0.0, self._last + self._interval - time.monotonic())
        self._task = asyncio.create_task(self._send_after(delay), name="coalesced-send")

    async def _send_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._task = None
        self._last = time.monotonic()
        await self._send()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
