"""Batched publishing: requests arriving while a round trip is in flight share the next one.

At 64 concurrent requests this sends one pipeline of up to 64 PUBLISH commands instead of 64
round trips. Each request still waits for Redis to confirm its own message: a 200 means published.

Every request has a deadline (enqueue time + `timeout`). A pipeline is given until the earliest
deadline in it; a request whose deadline passed while it queued is failed without being sent, so
a 503 almost always means "not published" (the exception: Redis executed the command but its
reply was lost, which no client can tell apart from a lost command).
"""

from __future__ import annotations

import asyncio
import logging

from istio_burst.core.redis import REDIS_DOWN_ERRORS, describe_error
from istio_burst.worker import metrics
from istio_burst.worker.publish_connection import (
    ConnectionLostError,
    PublishConnection,
    ReplyError,
)

log = logging.getLogger(__name__)

# A request whose flush is somehow never settled still gets its 503 this long after its deadline.
_GUARD_GRACE = 0.25


class PublishError(Exception):
    """Redis did not confirm the publish in time; the message was (almost surely) not sent."""


class _Pending:
    __slots__ = ("deadline", "future", "payload")

    def __init__(self, payload: bytes, future: asyncio.Future[int], deadline: float) -> None:
        self.payload = payload
        self.future = future
        self.deadline = deadline


class BatchPublisher:
    def __init__(self, connection: PublishConnection, channel: str, timeout: float) -> None:
        self._connection = connection
        self._channel = channel
        self._channel_bytes = channel.encode()
        self._timeout = timeout
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._redis_up: bool | None = None
        self.in_flight = 0  # requests waiting for their publish to be confirmed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis-publisher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for item in self._pending:
            _fail(item.future, "worker shutting down")
        self._pending.clear()
        self._connection.close()

    async def publish(self, payload: bytes) -> int:
        """Publish one message; returns the number of subscribers that received it."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append(_Pending(payload, future, started + self._timeout))
        self._wake.set()
        # Bounded even if the flusher itself were stuck: no request hangs on Redis.
        guard = loop.call_later(self._timeout + _GUARD_GRACE, self._expire, future)
        self.in_flight += 1
        try:
            return await future
        finally:
            self.in_flight -= 1
            guard.cancel()
            metrics.PUBLISH_SECONDS.observe(loop.time() - started)

    def _expire(self, future: asyncio.Future[int]) -> None:
        if not future.done():
            metrics.PUBLISH_ERRORS.labels(reason="timeout").inc()
            future.set_exception(PublishError(f"redis did not answer within {self._timeout:g}s"))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            now = loop.time()
            live = []
            for item in batch:
                if item.future.done():
                    continue  # its guard already answered 503
                elif item.deadline <= now:
                    self._expire(item.future)  # waited its whole time behind a slow flush
                else:
                    live.append(item)
            if live:
                await self._flush(live, min(item.deadline for item in live) - now)

    async def _flush(self, batch: list[_Pending], timeout: float) -> None:
        metrics.PUBLISH_BATCH.observe(len(batch))
        try:
            async with asyncio.timeout(timeout):
                replies = await self._connection.publish_many(
                    self._channel_bytes, [item.payload for item in batch]
                )
        except asyncio.CancelledError:
            for item in batch:  # shutting down: nobody waits past this point
                _fail(item.future, "worker shutting down")
            raise
        except REDIS_DOWN_ERRORS as exc:
            # Replies that did arrive before the connection broke confirm their messages.
            replies = exc.replies if isinstance(exc, ConnectionLostError) else []
            self._settle(batch[: len(replies)], replies)
            timed_out = isinstance(exc, TimeoutError)
            reason = (
                f"redis did not answer within {self._timeout:g}s"
                if timed_out
                else f"redis unavailable: {describe_error(exc)}"
            )
            self._set_redis_up(False, reason)
            failed = sum(_fail(item.future, reason) for item in batch)
            metrics.PUBLISH_ERRORS.labels(reason="timeout" if timed_out else "redis").inc(failed)
            return
        except Exception:
            log.exception("publishing failed unexpectedly")
            failed = sum(_fail(item.future, "publish failed") for item in batch)
            metrics.PUBLISH_ERRORS.labels(reason="error").inc(failed)
            return
        self._set_redis_up(True, None)
        self._settle(batch, replies)

    def _settle(self, batch: list[_Pending], replies: list[int | ReplyError]) -> None:
        for item, reply in zip(batch, replies, strict=True):
            if item.future.done():
                continue
            if isinstance(reply, ReplyError):
                metrics.PUBLISH_ERRORS.labels(reason="refused").inc()
                item.future.set_exception(PublishError(f"redis refused the publish: {reply}"))
            else:
                item.future.set_result(reply)

    def _set_redis_up(self, up: bool, reason: str | None) -> None:
        metrics.REDIS_UP.set(1 if up else 0)
        if up != self._redis_up:
            self._redis_up = up
            if up:
                log.info("redis publishing works", extra={"channel": self._channel})
            else:
                log.warning("redis publish failed", extra={"reason": reason})


def _fail(future: asyncio.Future[int], reason: str) -> bool:
    if future.done():
        return False
    future.set_exception(PublishError(reason))
    return True
