"""Batched publishing: requests arriving while a round trip is in flight share the next one.

At 64 concurrent requests this sends one pipeline of up to 64 PUBLISH commands instead of 64
round trips. Each request still waits for Redis to confirm its own message: a 200 means published.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis

from istio_burst.core.redis import REDIS_DOWN_ERRORS, describe_error
from istio_burst.worker import metrics

log = logging.getLogger(__name__)


class PublishError(Exception):
    """Redis did not confirm the publish in time; the message may or may not have gone out."""


class BatchPublisher:
    def __init__(self, client: aioredis.Redis, channel: str, timeout: float) -> None:
        self._client = client
        self._channel = channel
        self._timeout = timeout
        self._pending: list[tuple[bytes, asyncio.Future[int]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._redis_up: bool | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis-publisher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _, fut in self._pending:
            if not fut.done():
                fut.set_exception(PublishError("worker shutting down"))
        self._pending.clear()

    async def publish(self, payload: bytes) -> int:
        """Publish one message; returns the number of subscribers that received it."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((payload, fut))
        self._wake.set()
        started = time.perf_counter()
        try:
            # Bounded even if the flusher itself is stuck: no request hangs on Redis.
            return await asyncio.wait_for(asyncio.shield(fut), self._timeout + 0.5)
        except TimeoutError as exc:
            fut.add_done_callback(_consume_result)  # the flusher may still settle it later
            metrics.PUBLISH_ERRORS.labels(reason="timeout").inc()
            raise PublishError(f"redis did not answer within {self._timeout:g}s") from exc
        finally:
            metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                await self._flush(batch)

    async def _flush(self, batch: list[tuple[bytes, asyncio.Future[int]]]) -> None:
        metrics.PUBLISH_BATCH.observe(len(batch))
        try:
            async with asyncio.timeout(self._timeout):
                pipe = self._client.pipeline(transaction=False)
                for payload, _ in batch:
                    pipe.publish(self._channel, payload)
                results = await pipe.execute()
        except REDIS_DOWN_ERRORS as exc:
            reason = describe_error(exc)
            self._set_redis_up(False, reason)
            kind = "timeout" if isinstance(exc, TimeoutError) else "redis"
            metrics.PUBLISH_ERRORS.labels(reason=kind).inc(len(batch))
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(PublishError(f"redis unavailable: {reason}"))
            return
        self._set_redis_up(True, None)
        for (_, fut), receivers in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(int(receivers))

    def _set_redis_up(self, up: bool, reason: str | None) -> None:
        metrics.REDIS_UP.set(1 if up else 0)
        if up != self._redis_up:
            self._redis_up = up
            if up:
                log.info("redis publishing works", extra={"channel": self._channel})
            else:
                log.warning("redis publish failed", extra={"reason": reason})


def _consume_result(fut: asyncio.Future[int]) -> None:
    if not fut.cancelled():
        fut.exception()
