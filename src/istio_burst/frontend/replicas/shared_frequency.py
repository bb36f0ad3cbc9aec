"""One frequency for the whole deployment, kept in Redis and followed by every replica.

The value lives in a Redis hash `<channel>:frequency` (fields `freq`, `version`); every change is
made by one Lua script that bumps the version, stores the value and PUBLISHes it on the channel of
the same name, so all replicas see the changes in the order Redis made them and settle on the
value the key holds. Frontends relaying the same hash channel form one deployment.

- A replica (re)subscribes, then reads the key. The replica's last known value is written back
  when the key is missing (a Redis restarted without persistence): the frequency is re-established
  from the replicas' last known value, it never drops to 0. A replica that knows nothing yet
  seeds it with its FREQUENCY setting.
- Until that first read the replica is not ready; while Redis is away the last known value stays
  in force and `request()` refuses changes with `FrequencyNotSharedError`.
- A page's request is not applied locally: it goes to Redis and comes back through the
  subscription, like everyone else's. Requests are coalesced (one write in flight, then the
  newest), so a flood of events costs a bounded number of writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable

import orjson
import redis.asyncio as aioredis

from istio_burst.core.contracts import ContractError
from istio_burst.core.redis import REDIS_DOWN_ERRORS, describe_error, subscribe_forever
from istio_burst.frontend import metrics

log = logging.getLogger(__name__)

# Bump the version, store, publish: one atomic step, so the publish order is the store order.
_SET = """
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'freq', ARGV[1])
redis.call('PUBLISH', KEYS[1], '{"freq":' .. ARGV[1] .. ',"version":' .. version .. '}')
return version
"""
# Put our last known value back if the key is gone, then answer what the key holds.
_LOAD = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'freq', ARGV[1], 'version', ARGV[2])
end
return redis.call('HMGET', KEYS[1], 'freq', 'version')
"""

OnChange = Callable[[float], None]
Announce = Callable[[], Awaitable[None]]
# Changes are announced to the pages at most this often (the newest value last): a flood of
# changes costs the pages a bounded number of events (10 a second; issue 13 found 301 changes
# with 2,000 pages open pegging a core when each was broadcast).
ANNOUNCE_INTERVAL = 0.1
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


def decode_change(data: bytes | str) -> tuple[float, int]:
    """A published change `{"freq": <number>, "version": <int>}` -> (freq, version)."""
    try:
        change = orjson.loads(data)
        freq, version = float(change["freq"]), int(change["version"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ContractError(f"frequency change is not {{freq, version}}: {exc}") from exc
    if not math.isfinite(freq) or freq < 0:
        raise ContractError(f"frequency change {freq!r} is not a rate")
    return freq, version


def decode_stored(stored: list[bytes | None]) -> tuple[float, int]:
    """HMGET freq version -> (freq, version)."""
    raw_freq, raw_version = stored
    if raw_freq is None or raw_version is None:
        raise ContractError(f"frequency key lacks a field: {stored!r}")
    return decode_change(b'{"freq":%s,"version":%s}' % (raw_freq, raw_version))


class SharedFrequency:
    def __init__(
        self,
        url: str,
        client: aioredis.Redis,
        channel: str,
        *,
        initial: float,
        on_change: OnChange,
        announce: Announce,
    ) -> None:
        """`on_change(freq)` is called at once on every change (the driver); `announce()` soon
        after, coalesced (the pages: the value, and whether changes can be shared)."""
        self._url = url
        self._client = client
        self.key = frequency_key(channel)
        self.value = initial
        metrics.DEPLOYMENT_FREQUENCY.set(initial)
        self.version = 0
        self.loaded = False  # read from Redis at least once: the replica may serve
        self.shared = False  # subscribed now: changes reach every replica
        self.reason: str | None = "not subscribed yet"
        self._on_change = on_change
        self._announce = announce
        self._wanted: float | None = None
        self._writing = False
        self._written = 0  # the version our last write made (its echo may still be on the way)
        self._wake = asyncio.Event()
        self._news = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._load: asyncio.Task[None] | None = None
        self._set = client.register_script(_SET)
        self._read = client.register_script(_LOAD)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._subscribe(), name="frequency-subscription"),
            asyncio.create_task(self._write_loop(), name="frequency-writer"),
            asyncio.create_task(self._announce_loop(), name="frequency-announcer"),
        ]

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._load] if self._load else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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

    async def _subscribe(self) -> None:
        await subscribe_forever(self._url, [self.key], self._on_message, self._on_state)

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

    def _on_state(self, up: bool, reason: str | None) -> None:
        self.reason = reason
        if up:
            # Shared only once the key is read again (a restarted Redis may have lost it).
            if self._load is not None:
                self._load.cancel()
            self._load = asyncio.create_task(self._load_key(), name="frequency-load")
        elif self.shared:
            self.shared = False
            metrics.FREQUENCY_SHARED.set(0)
            self._news.set()

    async def _load_key(self) -> None:
        delay = 0.05
        while True:
            try:
                stored = await self._read(keys=[self.key], args=[repr(self.value), self.version])
                freq, version = decode_stored(stored)
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
        self.version = version
        self._written = min(self._written, version)
        if not self.loaded:
            log.info("frequency loaded", extra={"freq": freq, "version": version})
        self.loaded = True
        self._apply(freq, always=True)  # the driver starts even if F is what we assumed
        self.shared = True
        metrics.FREQUENCY_SHARED.set(1)
        self._news.set()

    async def _on_message(self, _channel: str, data: bytes) -> None:
        try:
            freq, version = decode_change(data)
        except ContractError as exc:
            log.warning("ignored a bad frequency change", extra={"error": str(exc)})
            return
        if version <= self.version:
            return  # older than what we read
        self.version = version
        self._apply(freq)

    def _apply(self, freq: float, *, always: bool = False) -> None:
        if freq == self.value and not always:
            return
        if freq != self.value:
            log.info("frequency changed", extra={"from": self.value, "to": freq})
        self.value = freq
        metrics.DEPLOYMENT_FREQUENCY.set(freq)
        self._on_change(freq)
        self._news.set()

    async def _announce_loop(self) -> None:
        while True:
            await self._news.wait()
            self._news.clear()
            try:
                await self._announce()
            except Exception:  # a page that cannot be told must not stop the others being told
                log.exception("could not announce the frequency")
            await asyncio.sleep(ANNOUNCE_INTERVAL)
