"""Everything the frontend reads of the watcher's state, in one place.

The watcher writes its state to WATCHER_STATE_KEY and publishes it on WATCHER_STATE_CHANNEL. The
page shows it whole (the Watcher card) and its weights as the routing in force (the Routing
card). Reading it again each time the subscription is (re)established means a state published
while Redis was away is not missed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from istio_burst.core.background import BackgroundTasks
from istio_burst.core.contracts import (
    SUBSET_BURST,
    SUBSET_PRIMARY,
    WATCHER_STATE_CHANNEL,
    WATCHER_STATE_KEY,
    ContractError,
    WatcherState,
)
from istio_burst.core.redis import REDIS_DOWN_ERRORS, describe_error
from istio_burst.frontend import metrics
from istio_burst.frontend.replicas.subscription import RedisSubscription

log = logging.getLogger(__name__)

StateView = dict[str, Any]  # a WatcherState as JSON, as the page gets it
ShowState = Callable[[StateView | None], None]


def parse_watcher_state(raw: bytes | str) -> StateView:
    """The watcher's state as published, checked against the watcher's own model; ContractError
    when it does not match. The page gets it as JSON, with the model's defaults filled in."""
    return WatcherState.decode(raw).as_dict()


def routing_view(state: StateView | None) -> dict[str, Any]:
    """What the Routing card shows: the weights as the watcher reports them, and who applies
    them (`haproxy` locally, `istio` in Kubernetes); before any report, only that there is none.
    """
    if state is None:
        return {"reported": False}
    weights = state["weights"]  # checked by parse_watcher_state
    return {
        "reported": True,
        SUBSET_PRIMARY: weights[SUBSET_PRIMARY],
        SUBSET_BURST: weights[SUBSET_BURST],
        "actuator": state.get("actuator") or None,
        "target": state.get("target") or None,
        "dry_run": bool(state.get("dry_run", False)),
        "at": state.get("at"),
        "routing": state.get("routing") or None,  # {state, detail, ...}: in force yet?
    }


class WatcherStateFeed:
    """Follows the watcher's state on the subscription and hands each one to `show`."""

    def __init__(
        self, client: aioredis.Redis, subscription: RedisSubscription, show: ShowState
    ) -> None:
        self._client = client
        self._show = show
        self._tasks = BackgroundTasks()
        subscription.on_message(WATCHER_STATE_CHANNEL, self._published)
        subscription.on_state(self._subscribed)

    async def stop(self) -> None:
        await self._tasks.stop()

    def _published(self, data: bytes) -> None:
        self._show(parse_watcher_state(data))

    def _subscribed(self, up: bool) -> None:
        if up:
            self._tasks.start(self.load(), "load-watcher-state")

    async def load(self) -> None:
        """Read the watcher state as it is now (absent: no watcher has reported yet)."""
        try:
            raw = await self._client.get(WATCHER_STATE_KEY)
        except REDIS_DOWN_ERRORS as exc:
            log.warning("could not read the watcher state", extra={"reason": describe_error(exc)})
            return
        try:
            state = None if raw is None else parse_watcher_state(raw)
        except ContractError as exc:
            metrics.BAD_MESSAGES.labels(channel=WATCHER_STATE_KEY).inc()
            log.warning("ignored a bad watcher state in redis", extra={"error": str(exc)})
            return
        self._show(state)
