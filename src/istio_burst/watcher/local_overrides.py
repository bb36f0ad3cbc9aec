"""The local override (`istio-burst watcher override ...`), kept on Redis where the watcher reads
it each round. With `--for`, the key also expires on Redis, so a forgotten override ends even
if no watcher is running to notice its end."""

from __future__ import annotations

import logging
from datetime import datetime

from istio_burst.core.contracts import OverrideTarget
from istio_burst.core.redis import REDIS_DOWN_ERRORS, create_client, describe_error
from istio_burst.watcher.overrides import LOCAL_OVERRIDE_KEY, RawOverride, from_local, local_value

log = logging.getLogger(__name__)


class RedisOverrides:
    """Reads the override each round; while Redis is away, the last one read stands."""

    def __init__(self, redis_url: str, timeout: float) -> None:
        self._client = create_client(redis_url, timeout=timeout)
        self._last: RawOverride | None = None
        self._failing = False

    async def read(self) -> RawOverride | None:
        try:
            raw = await self._client.get(LOCAL_OVERRIDE_KEY)
        except REDIS_DOWN_ERRORS as exc:
            if not self._failing:
                log.warning(
                    "cannot read the local override on redis; keeping the last one read",
                    extra={"reason": describe_error(exc)},
                )
            self._failing = True
            return self._last
        self._failing = False
        self._last = from_local(raw)
        return self._last

    async def close(self) -> None:
        await self._client.aclose()


async def set_override(
    redis_url: str, target: OverrideTarget, until: datetime | None, timeout: float = 5.0
) -> None:
    client = create_client(redis_url, timeout=timeout)
    try:
        value = local_value(target, until)
        if until is None:
            await client.set(LOCAL_OVERRIDE_KEY, value)
        else:
            # A little past `until`: the watcher sees the end itself and records it as expired.
            seconds = max(1, int(until.timestamp() - datetime.now(until.tzinfo).timestamp()) + 60)
            await client.set(LOCAL_OVERRIDE_KEY, value, ex=seconds)
    finally:
        await client.aclose()


async def clear_override(redis_url: str, timeout: float = 5.0) -> bool:
    """True if there was one."""
    client = create_client(redis_url, timeout=timeout)
    try:
        return bool(await client.delete(LOCAL_OVERRIDE_KEY))
    finally:
        await client.aclose()
