"""The load's own bound: never more than F requests in any one second, whatever a page does."""

from __future__ import annotations

import math
from collections import deque


class SendCap:
    """At most about F sends in any one second, F the highest frequency in force during it.

    The driver's schedule keeps to that by itself; this holds it on the actual send times too,
    where a loop that wakes late or catches up after a stall bunches ticks. The allowance is
    F + 1, or F + 1 % above 100/s, so the ordinary jitter of a busy loop never costs a send.
    """

    def __init__(self) -> None:
        self._sent: deque[float] = deque()
        self._frequency = 0.0
        self._lower_to: float | None = None  # a lower frequency, in force for the cap at...
        self._lower_at = math.inf

    def set_frequency(self, frequency: float, now: float) -> None:
        if frequency >= self._frequency:
            self._frequency, self._lower_to, self._lower_at = frequency, None, math.inf
        else:
            # Sends at the higher rate stay in the window for a second.
            self._lower_to, self._lower_at = frequency, now + 1.0

    def admit(self, now: float) -> bool:
        """True (and counted) if a send now keeps the last second within the allowance."""
        if self._lower_to is not None and now >= self._lower_at:
            self._frequency, self._lower_to, self._lower_at = self._lower_to, None, math.inf
        while self._sent and self._sent[0] <= now - 1.0:
            self._sent.popleft()
        if len(self._sent) >= math.floor(self._frequency + max(1.0, 0.01 * self._frequency)):
            return False
        self._sent.append(now)
        return True
