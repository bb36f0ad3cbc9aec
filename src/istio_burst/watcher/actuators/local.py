"""The local demo's routing: the weights in Redis (ROUTING_KEY), announced on ROUTING_CHANNEL.

The frontend's router reads the key at start and follows the channel. The write is a Redis
transaction WATCHing the key, so a change made by someone else since the read is not lost.
"""

from __future__ import annotations

import asyncio

from redis.exceptions import WatchError

from istio_burst.core.contracts import (
    PRIMARY_ONLY,
    ROUTING_CHANNEL,
    ROUTING_KEY,
    ContractError,
    Weights,
)
from istio_burst.core.redis import REDIS_DOWN_ERRORS, create_client, describe_error
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind, Snapshot


class RedisActuator:
    name = "local"

    def __init__(self, redis_url: str, timeout: float) -> None:
        self._client = create_client(redis_url, timeout=timeout)
        self.target = f"redis key {ROUTING_KEY}"

    async def read(self) -> Snapshot:
        try:
            raw = await self._client.get(ROUTING_KEY)
        except REDIS_DOWN_ERRORS as exc:
            raise _redis_error("get", exc) from exc
        if raw is None:
            return Snapshot(PRIMARY_ONLY, raw, exact=False)  # the router's default until set
        try:
            return Snapshot(Weights.decode(raw), raw)
        except ContractError:
            return Snapshot(PRIMARY_ONLY, raw, exact=False)  # unreadable: replace it

    async def write(self, seen: Snapshot, desired: Weights) -> None:
        payload = desired.encode()
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                await pipe.watch(ROUTING_KEY)
                if await pipe.get(ROUTING_KEY) != seen.token:
                    raise ActuatorError(ActuatorErrorKind.CONFLICT, "changed since it was read")
                pipe.multi()
                pipe.set(ROUTING_KEY, payload)
                pipe.publish(ROUTING_CHANNEL, payload)
                await pipe.execute()
        except WatchError as exc:
            raise ActuatorError(ActuatorErrorKind.CONFLICT, "changed while writing") from exc
        except REDIS_DOWN_ERRORS as exc:
            raise _redis_error("set", exc) from exc

    async def close(self) -> None:
        await self._client.aclose()


def _redis_error(verb: str, exc: BaseException) -> ActuatorError:
    kind = (
        ActuatorErrorKind.TIMEOUT
        if isinstance(exc, asyncio.TimeoutError) or "Timeout" in type(exc).__name__
        else ActuatorErrorKind.UNREACHABLE
    )
    return ActuatorError(kind, f"{verb} failed: {describe_error(exc)}")
