"""What the frontend follows in Redis: the hashes and the watcher's state (with its weights).

One subscription carries both channels. Each time it is (re)established the state's key is read
again, so a state published while Redis was away is not missed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis

from istio_burst.core.contracts import (
    WATCHER_STATE_CHANNEL,
    WATCHER_STATE_KEY,
    ContractError,
    HashMessage,
    Weights,
)
from istio_burst.core.redis import REDIS_DOWN_ERRORS, describe_error, subscribe_forever
from istio_burst.frontend import metrics
from istio_burst.frontend.page.hash_relay import HashRelay
from istio_burst.frontend.page.pages import Pages

log = logging.getLogger(__name__)


class RedisFeed:
    def __init__(
        self,
        url: str,
        client: aioredis.Redis,
        channel: str,
        *,
        relay: HashRelay,
        pages: Pages,
    ) -> None:
        self._url = url
        self._client = client
        self._channel = channel
        self._relay = relay
        self._pages = pages
        self.up = False
        self.reason: str | None = "not subscribed yet"
        # Held so the re-read task is not garbage-collected while it runs.
        self._reload: asyncio.Task[None] | None = None

    async def run(self) -> None:
        await subscribe_forever(
            self._url,
            [self._channel, WATCHER_STATE_CHANNEL],
            self._on_message,
            self._on_state,
        )

    async def _on_message(self, channel: str, data: bytes) -> None:
        try:
            if channel == self._channel:
                self._relay.add(HashMessage.decode(data))
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
        """Read the watcher state as it is now (absent: no watcher has reported yet)."""
        try:
            raw_state = await self._client.get(WATCHER_STATE_KEY)
        except REDIS_DOWN_ERRORS as exc:
            reason = describe_error(exc)
            log.warning("could not read the watcher state", extra={"reason": reason})
            return
        try:
            await self._pages.set_watcher(None if raw_state is None else _watcher_state(raw_state))
        except ContractError as exc:
            metrics.BAD_MESSAGES.labels(channel=WATCHER_STATE_KEY).inc()
            log.warning("ignored a bad watcher state in redis", extra={"error": str(exc)})


def _watcher_state(raw: bytes | str) -> dict[str, Any]:
    try:
        state = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"watcher state is not JSON: {exc}") from exc
    if not isinstance(state, dict):
        raise ContractError(f"watcher state is not a JSON object but {type(state).__name__}")
    # The page shows these weights as the routing in force: they must be weights.
    weights = state.get("weights")
    if not isinstance(weights, dict):
        raise ContractError(f"watcher state has no weights object but {weights!r}")
    Weights.decode(weights)
    return state
