"""Which frontend replicas are alive, so each drives its share of the deployment's frequency.

Every HEARTBEAT_INTERVAL each replica runs one Lua script that stamps its id in the sorted set
`<channel>:frontends` with an expiry (Redis's own clock, so replicas' clocks need not agree),
stores its figures (achieved rate, pages, in flight) in the hash `<channel>:frontend-stats`,
drops replicas whose heartbeat expired and answers who is left with their figures. Each replica
then drives F / live replicas: the shares are equal and sum to F. A replica that dies is dropped
within HEARTBEAT_TTL + HEARTBEAT_INTERVAL; one that stops says goodbye and is dropped at once.
While Redis is away the last known membership (and so the last share) stays in force, and after
a Redis restart (the set is empty) for one more beat, while everyone re-announces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable

import redis.asyncio as aioredis

from istio_burst.core.background import BackgroundTasks
from istio_burst.core.contracts import ContractError, ReplicaFigures
from istio_burst.core.redis import REDIS_DOWN_ERRORS, describe_error
from istio_burst.frontend import metrics

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 0.5
HEARTBEAT_TTL = 2.5

_HEARTBEAT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local was_there = redis.call('ZSCORE', KEYS[1], ARGV[1]) and 1 or 0
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
-- A deployment whose replicas are all gone leaves nothing behind for long.
redis.call('PEXPIRE', KEYS[1], math.floor(tonumber(ARGV[2]) * 10000))
redis.call('PEXPIRE', KEYS[2], math.floor(tonumber(ARGV[2]) * 10000))
local live = redis.call('ZRANGE', KEYS[1], 0, -1)
return {was_there, live, redis.call('HMGET', KEYS[2], unpack(live))}
"""
_GOODBYE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
"""

Listener = Callable[[], None]


def replica_id() -> str:
    """Unique per process: the pod (host) name, the pid and a random tag (pids repeat)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Membership:
    def __init__(
        self,
        client: aioredis.Redis,
        channel: str,
        *,
        interval: float = HEARTBEAT_INTERVAL,
        ttl: float = HEARTBEAT_TTL,
    ) -> None:
        self.id = replica_id()
        self._client = client
        self._keys = [f"{channel}:frontends", f"{channel}:frontend-stats"]
        self._interval = interval
        self._ttl = ttl
        self.figures = ReplicaFigures()  # what the next heartbeat reports of this replica
        self.known = False  # one heartbeat answered: the share is known
        self.members: dict[str, ReplicaFigures] = {}
        self._listeners: list[Listener] = []
        self._failing = False
        self._tasks = BackgroundTasks()
        self._beat = client.register_script(_HEARTBEAT)
        self._goodbye = client.register_script(_GOODBYE)

    @property
    def count(self) -> int:
        return max(1, len(self.members))

    def on_change(self, listener: Listener) -> None:
        """`listener()` whenever the number of live replicas changes."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._tasks.start(self._run(), "membership")

    async def stop(self) -> None:
        """Stop beating and leave at once, so the others take over our share now."""
        await self._tasks.stop()
        with contextlib.suppress(*REDIS_DOWN_ERRORS):
            async with asyncio.timeout(1.0):
                await self._goodbye(keys=self._keys, args=[self.id])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self.beat()
            next_at = max(next_at + self._interval, loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def beat(self) -> None:
        figures = self.figures.model_dump_json()
        try:
            was_there, live, stored = await self._beat(
                keys=self._keys, args=[self.id, self._ttl, figures]
            )
        except REDIS_DOWN_ERRORS as exc:
            metrics.HEARTBEAT_ERRORS.inc()
            if not self._failing:
                self._failing = True
                log.warning(
                    "heartbeat failed; keeping the last known share",
                    extra={"reason": describe_error(exc), "replicas": self.count},
                )
            return
        self._failing = False
        members = {
            (rid.decode() if isinstance(rid, bytes) else str(rid)): _figures(raw)
            for rid, raw in zip(live, stored, strict=True)
        }
        if not was_there and self.known:
            # Our own entry was gone too: Redis lost the set (restarted). The others re-announce
            # within an interval; until then count them as they were, so no share jumps.
            members = {**self.members, **members}
        before = len(self.members) if self.known else None
        self.members, self.known = members, True
        if len(members) != before:
            log.info("frontend replicas", extra={"replicas": len(members), "me": self.id})
            metrics.REPLICAS.set(self.count)
            for listener in self._listeners:
                listener()


def _figures(raw: bytes | None) -> ReplicaFigures:
    """A replica's reported figures; none yet (or unreadable) count as zero."""
    if raw is None:
        return ReplicaFigures()
    try:
        return ReplicaFigures.decode(raw)
    except ContractError:
        return ReplicaFigures()
