"""One frequency for the whole deployment, kept in Redis and followed by every replica.

The value lives in a Redis hash `<channel>:frequency` (fields `freq`, `version`); every change is
made by one Lua script that bumps the version, stores the value and PUBLISHes it (a
`FrequencyChange`, encoded by cjson) on the channel of the same name, so all replicas see the
changes in the order Redis made them and settle on the value the key holds. Frontends relaying
the same hash channel form one deployment.

- Each time the replica's subscription is (re)established it reads the key. The replica's last
  known value is written back when the key is missing (a Redis restarted without persistence):
  the frequency never drops to 0 because Redis lost it. A replica that knows nothing yet seeds it
  with its FREQUENCY setting.
- Until that first read the replica is not ready; while Redis is away the last known value stays
  in force and `request()` refuses changes with `FrequencyNotSharedError`.
- A request is not applied locally: it goes to Redis and comes back through the subscription,
  like everyone else's, so every replica applies the same changes in the same order. Requests
  are coalesced (one write in flight, then the newest), so a flood costs a bounded number of
  writes.
- Listeners (this replica's driver share and its pages) are called at once on every change of
  the value or of whether it is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from istio_burst.core.background import BackgroundTasks
from istio_burst.core.contracts import ContractError, FrequencyChange
from istio_burst.core.redis import REDIS_DOWN_ERRORS, describe_error
from istio_burst.frontend import metrics
from istio_burst.frontend.replicas.subscription import RedisSubscription

log = logging.getLogger(__name__)

# Bump the version, store, publish: one atomic step, so the publish order is the store order.
# `freq` is published as the text stored (ARGV[1], a Python float's repr): cjson would round a
# number to 14 digits, and then the published value and the stored one could differ.
_SET = """
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'freq', ARGV[1])
redis.call('PUBLISH', KEYS[1], cjson.encode({freq = ARGV[1], version = version}))
return version
"""
# Put our last known value back if the key is gone, then answer what the key holds.
_LOAD = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'freq', ARGV[1], 'version', ARGV[2])
end
return redis.call('HMGET', KEYS[1], 'freq', 'version')
"""

Listener = Callable[[], None]
# A replica writes a change to Redis at most this often (the newest wanted value): a flood from
# its pages costs Redis and every replica at most 1 / WRITE_INTERVAL changes per second.
WRITE_INTERVAL = 0.02


class FrequencyNotSharedError(RuntimeError):
    """Redis is away: a change could not reach the other replicas, so it is not made."""


def frequency_key(channel: str) -> str:
    return f"{channel}:frequency"


async def store_frequency(client: aioredis.Redis, channel: str, frequency: float) -> int:
    """Store and publish a (validated) frequency in one atomic step; the new version."""
    return int(await client.eval(_SET, 1, frequency_key(channel), repr(float(frequency))))


def decode_stored(stored: list[bytes | None]) -> FrequencyChange:
    """HMGET freq version -> the change it holds."""
    raw_freq, raw_version = stored
    if raw_freq is None or raw_version is None:
        raise ContractError(f"frequency key lacks a field: {stored!r}")
    return FrequencyChange.from_fields({"freq": raw_freq, "version": raw_version})


class SharedFrequency:
    def __init__(
        self,
        client: aioredis.Redis,
        channel: str,
        subscription: RedisSubscription,
        *,
        initial: float,
    ) -> None:
        self._client = client
        self.key = frequency_key(channel)
        self.value = initial
        metrics.DEPLOYMENT_FREQUENCY.set(initial)
        self.version = 0
        self.loaded = False  # read from Redis at least once: the replica may serve
        self.shared = False  # subscribed now: changes reach every replica
        self._subscription = subscription
        self._listeners: list[Listener] = []
        self._wanted: float | None = None
        self._writing = False
        self._written = 0  # the version our last write made (its echo may still be on the way)
        self._wake = asyncio.Event()
        self._tasks = BackgroundTasks()
        self._load: asyncio.Task[None] | None = None
        self._set = client.register_script(_SET)
        self._read = client.register_script(_LOAD)
        subscription.on_message(self.key, self._published)
        subscription.on_state(self._subscribed)

    @property
    def reason(self) -> str | None:
        return self._subscription.reason

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        self._tasks.start(self._write_loop(), "frequency-writer")

    async def stop(self) -> None:
        await self._tasks.stop()

    def request(self, frequency: float) -> bool:
        """Ask for a new deployment-wide frequency (already validated); applied when it comes
        back from Redis. False: nothing to change. Raises FrequencyNotSharedError while Redis is
        away."""
        if not self.shared:
            raise FrequencyNotSharedError(
                f"Redis is not reachable ({self.reason}): the frequency cannot be shared with "
                f"the other frontends right now, so it stays at {self.value:g}"
            )
        settled = self._wanted is None and not self._writing and self._written <= self.version
        if frequency == self.value and settled:
            return False
        self._wanted = frequency
        self._wake.set()
        return True

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            wanted, self._wanted = self._wanted, None
            if wanted is None:
                continue
            self._writing = True
            try:
                self._written = int(await self._set(keys=[self.key], args=[repr(wanted)]))
            except REDIS_DOWN_ERRORS as exc:
                log.warning(
                    "could not share a frequency change",
                    extra={"freq": wanted, "reason": describe_error(exc)},
                )
            finally:
                self._writing = False
            await asyncio.sleep(WRITE_INTERVAL)

    def _subscribed(self, up: bool) -> None:
        if up:
            # Shared only once the key is read again (a restarted Redis may have lost it).
            if self._load is not None:
                self._load.cancel()
            self._load = self._tasks.start(self._load_key(), "frequency-load")
        elif self.shared:
            self.shared = False
            metrics.FREQUENCY_SHARED.set(0)
            self._tell()

    async def _load_key(self) -> None:
        delay = 0.05
        while True:
            try:
                stored = await self._read(keys=[self.key], args=[repr(self.value), self.version])
                change = decode_stored(stored)
                break
            except REDIS_DOWN_ERRORS as exc:
                log.warning("could not read the frequency", extra={"reason": describe_error(exc)})
            except ContractError as exc:
                log.warning("the frequency in redis is broken", extra={"error": str(exc)})
                with contextlib.suppress(*REDIS_DOWN_ERRORS):
                    await self._client.delete(self.key)  # ours goes back next round
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        # What the key holds now is the truth, whatever version we knew (Redis may be new).
        self.version = change.version
        self._written = min(self._written, change.version)
        if not self.loaded:
            log.info("frequency loaded", extra={"freq": change.freq, "version": change.version})
        self.loaded = True
        self.shared = True
        metrics.FREQUENCY_SHARED.set(1)
        self._apply(change.freq)
        self._tell()  # the driver starts even if F is what we assumed

    def _published(self, data: bytes) -> None:
        change = FrequencyChange.decode(data)
        if change.version <= self.version:
            return  # older than what we read
        self.version = change.version
        if self._apply(change.freq):
            self._tell()

    def _apply(self, freq: float) -> bool:
        if freq == self.value:
            return False
        log.info("frequency changed", extra={"from": self.value, "to": freq})
        self.value = freq
        metrics.DEPLOYMENT_FREQUENCY.set(freq)
        return True

    def _tell(self) -> None:
        for listener in self._listeners:
            listener()
