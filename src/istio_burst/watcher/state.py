"""Publishing the watcher's state (`core.contracts.WatcherState`) on Redis for the page."""

from __future__ import annotations

import logging

from istio_burst.core.contracts import WATCHER_STATE_CHANNEL, WATCHER_STATE_KEY, WatcherState
from istio_burst.core.redis import REDIS_DOWN_ERRORS, create_client, describe_error
from istio_burst.watcher import metrics

log = logging.getLogger(__name__)


class StatePublisher:
    """SET the state on WATCHER_STATE_KEY and PUBLISH it on WATCHER_STATE_CHANNEL.

    Best effort: a Redis outage is counted and logged once, never stops the watcher.
    """

    def __init__(self, redis_url: str, timeout: float) -> None:
        self._client = create_client(redis_url, timeout=timeout)
        self._failing = False

    async def publish(self, state: WatcherState) -> None:
        payload = state.model_dump_json()
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(WATCHER_STATE_KEY, payload)
                pipe.publish(WATCHER_STATE_CHANNEL, payload)
                await pipe.execute()
        except REDIS_DOWN_ERRORS as exc:
            metrics.STATE_PUBLISH_ERRORS.inc()
            if not self._failing:
                log.warning("cannot publish state on redis", extra={"reason": describe_error(exc)})
            self._failing = True
            return
        if self._failing:
            log.info("publishing state on redis again")
        self._failing = False

    async def close(self) -> None:
        await self._client.aclose()
