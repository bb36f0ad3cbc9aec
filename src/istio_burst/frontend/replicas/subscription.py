"""The replica's one Redis subscription, and its one truth of whether Redis is up.

Every channel the frontend follows (the hashes, the watcher's state, the shared frequency) is on
this subscription; each channel's messages go to the handler registered for it, in Redis' order.
Listeners are told when it is (re)established or lost: each re-reads what it may have missed.
A message that breaks its contract is counted and skipped, never the end of the subscription.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from istio_burst.core.background import BackgroundTasks
from istio_burst.core.contracts import ContractError
from istio_burst.core.redis import subscribe_forever
from istio_burst.frontend import metrics

log = logging.getLogger(__name__)

Handler = Callable[[bytes], Awaitable[None] | None]
StateListener = Callable[[bool], None]


class RedisSubscription:
    def __init__(self, url: str) -> None:
        self._url = url
        self._handlers: dict[str, Handler] = {}
        self._listeners: list[StateListener] = []
        self._tasks = BackgroundTasks()
        self.up = False
        self.reason: str | None = "not subscribed yet"

    def on_message(self, channel: str, handler: Handler) -> None:
        """Before start(): `handler(data)` for each message on `channel`."""
        self._handlers[channel] = handler

    def on_state(self, listener: StateListener) -> None:
        """`listener(up)` at each change: subscribed (again), or lost."""
        self._listeners.append(listener)

    def start(self) -> None:
        work = subscribe_forever(self._url, list(self._handlers), self._dispatch, self._state)
        self._tasks.start(work, "redis-subscription")

    async def stop(self) -> None:
        await self._tasks.stop()

    async def _dispatch(self, channel: str, data: bytes) -> None:
        try:
            result = self._handlers[channel](data)
            if result is not None:
                await result
        except ContractError as exc:
            metrics.BAD_MESSAGES.labels(channel=channel).inc()
            log.warning("ignored a message that breaks its contract", extra={"error": str(exc)})

    def _state(self, up: bool, reason: str | None) -> None:
        self.up, self.reason = up, reason
        metrics.REDIS_UP.set(1 if up else 0)
        for listener in self._listeners:
            listener(up)
