"""A page's budget of `frequency` events, spent when an event reaches the socket.

socket.io reads a websocket one frame at a time, several event-loop turns per frame; with the
frontend busy with thousands of pages that is a few frames a second, so a budget checked in the
event handler finds itself refilled at every event and a burst of hundreds trickles through for
many seconds. The guard in front of Engine.IO (socket_guard.py) therefore reads every frame as it
arrives and asks the page's budget here: events beyond it are dropped and counted at once, and
the first of each run of drops is passed on as OVER_BUDGET_EVENT so the page's handler can tell
the page (pages.py). Long-polling POSTs go through the same budget, packet by packet.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from istio_burst.frontend import metrics

FREQUENCY_EVENT = "frequency"
# Stands in for the first dropped event of a run; a page that sends it itself has it dropped.
OVER_BUDGET_EVENT = "frequency_over_budget"
# An Engine.IO MESSAGE carrying a socket.io EVENT, as the guard passes it on.
_EVENT_PREFIX = "42"
OVER_BUDGET_PACKET = _EVENT_PREFIX + orjson.dumps([OVER_BUDGET_EVENT]).decode()


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


def event_name(packet: str) -> str | None:
    """The event an Engine.IO packet carries (`42["frequency",{…}]`, with or without a
    namespace and an ack id, as socket.io reads them); None for anything else."""
    if not packet.startswith(_EVENT_PREFIX):
        return None
    # Most packets are the page's `received` acknowledgements: without the name spelt out (or
    # an escape that could spell it), a packet is none of ours, and costs no JSON parsing.
    if FREQUENCY_EVENT not in packet and OVER_BUDGET_EVENT not in packet and "\\" not in packet:
        return None
    body = packet[len(_EVENT_PREFIX) :]
    if body.startswith("/"):
        _, _, body = body.partition(",")
    body = body.lstrip("0123456789")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # socket.io refuses it too
    return data[0] if isinstance(data, list) and data and isinstance(data[0], str) else None


class PageBudget:
    """One page's `frequency` events: `rate` a second, up to `rate` at once."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._bucket = TokenBucket(rate, clock)
        self._clock = clock
        self._dropping = False  # in a run of drops whose first was passed on
        self.used_at = clock()

    def admit(self, packet: str) -> str | None:
        """The packet to pass on (itself, or OVER_BUDGET_PACKET for the first drop of a run), or
        None when it is dropped."""
        name = event_name(packet)
        if name == OVER_BUDGET_EVENT:
            return None
        if name != FREQUENCY_EVENT:
            return packet
        self.used_at = self._clock()
        if self._bucket.take():
            self._dropping = False
            return packet
        metrics.FREQUENCY_DROPPED.inc()
        if self._dropping:
            return None
        self._dropping = True
        return OVER_BUDGET_PACKET


class PollingBudgets:
    """The budgets of long-polling pages, by Engine.IO session id. A budget unused for
    FORGET_AFTER seconds is full again, the same as a new one, so it is forgotten."""

    FORGET_AFTER = 2.0

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._clock = clock
        self._budgets: dict[str, PageBudget] = {}
        self._swept_at = clock()

    def of(self, sid: str) -> PageBudget:
        now = self._clock()
        if now - self._swept_at > self.FORGET_AFTER:
            self._swept_at = now
            self._budgets = {
                key: budget
                for key, budget in self._budgets.items()
                if now - budget.used_at <= self.FORGET_AFTER
            }
        budget = self._budgets.get(sid)
        if budget is None:
            budget = self._budgets[sid] = PageBudget(self._rate, self._clock)
        return budget
