"""What the frontend follows in Redis: the hashes, the route weights and the watcher's state.

One subscription carries all three channels. Each time it is (re)established the two keys are
read again, so weights or state published while Redis was away are not missed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis

from istio_burst.core.contracts import (
    ROUTING_CHANNEL,
    ROUTING_KEY,
    WATCHER_STATE_CHANNEL,
    WATCHER_STATE_KEY,
    ContractError,
    HashMessage,
    Weights,
)
from istio_burst.core.redis import REDIS_DOWN_ERRORS, describe_error, subscribe_forever
from istio_burst.frontend import metrics
from istio_burst.frontend.pages import Pages
from istio_burst.frontend.relay import HashRelay
from istio_burst.frontend.routing import Router

log = logging.getLogger(__name__)


class RedisFeed:
    def __init__(
        self,
        url: str,
        client: aioredis.Redis,
        channel: str,
        *,
        relay: HashRelay,
        router: Router,
        pages: Pages,
    ) -> None:
        self._url = url
        self._client = client
        self._channel = channel
        self._relay = relay
        self._router = router
        self._pages = pages
        self.up = False
        self.reason: str | None = "not subscribed yet"
        # Held so the re-read task is not garbage-collected while it runs.
        self._reload: asyncio.Task[None] | None = None

    async def run(self) -> None:
        await subscribe_forever(
            self._url,
            [self._channel, ROUTING_CHANNEL, WATCHER_STATE_CHANNEL],
            self._on_message,
            self._on_state,
        )

    async def _on_message(self, channel: str, data: bytes) -> None:
        try:
            if channel == self._channel:
                self._relay.add(HashMessage.decode(data))
            elif channel == ROUTING_CHANNEL:
                await self._apply_weights(Weights.decode(data))
            elif channel == WATCHER_STATE_CHANNEL:
                await self._pages.set_watcher(_watcher_state(data))
        except ContractError as exc:
            metrics.BAD_MESSAGES.labels(channel=channel).inc()
            log.warning("ignored a message that breaks its contract", extra={"error": str(exc)})

    def _on_state(self, up: bool, reason: str | None) -> None:
        self.up, self.reason = up, reason
        metrics.REDIS_UP.set(1 if up else 0)
        if up:
            self._reload = asyncio.create_task(self.load_keys(), name="load-redis-keys")

    async def load_keys(self) -> None:
        """Read the weights and the watcher state as they are now (absent: the defaults)."""
        try:
            raw_weights, raw_state = await self._client.mget(ROUTING_KEY, WATCHER_STATE_KEY)
        except REDIS_DOWN_ERRORS as exc:
            reason = describe_error(exc)
            log.warning("could not read weights and watcher state", extra={"reason": reason})
            return
        try:
            await self._apply_weights(None if raw_weights is None else Weights.decode(raw_weights))
        except ContractError as exc:
            metrics.BAD_MESSAGES.labels(channel=ROUTING_KEY).inc()
            log.warning("ignored bad weights in redis", extra={"error": str(exc)})
        try:
            await self._pages.set_watcher(None if raw_state is None else _watcher_state(raw_state))
        except ContractError as exc:
            metrics.BAD_MESSAGES.labels(channel=WATCHER_STATE_KEY).inc()
            log.warning("ignored a bad watcher state in redis", extra={"error": str(exc)})

    async def _apply_weights(self, weights: Weights | None) -> None:
        before = self._router.describe()
        self._router.set_weights(weights)
        after = self._router.describe()
        if after != before:
            log.info("route weights", extra={"weights": after})
        await self._pages.set_routing(after)


def _watcher_state(raw: bytes | str) -> dict[str, Any]:
    try:
        state = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"watcher state is not JSON: {exc}") from exc
    if not isinstance(state, dict):
        raise ContractError(f"watcher state is not a JSON object but {type(state).__name__}")
    return state
