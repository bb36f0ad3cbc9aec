"""Bounding what pages can make the frontend do: a rate of events per page."""

from __future__ import annotations

import time
from collections.abc import Callable


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
