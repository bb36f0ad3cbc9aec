"""Publishing on Redis through redis-py: a 200 means Redis confirmed the PUBLISH.

Requests that arrive while a pipeline is on its way wait for it and go out together in the next
one: one pipeline in flight, so under load one connection carries large batches. redis-py (with
the hiredis parser) does everything else: the address, TLS, AUTH with ACL users, unix sockets.

Deadlines: each request waits at most `timeout` s. A pipeline gets the deadline of its oldest
request; when that passes, the read is cancelled and redis-py drops the connection, so commands
a paused Redis still holds are discarded with it instead of running after we answered 503.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from istio_burst.core.background import BackgroundTasks
from istio_burst.core.redis import REDIS_DOWN_ERRORS, describe_error, ping_reason
from istio_burst.worker import metrics

log = logging.getLogger(__name__)


class PublishError(Exception):
    """Redis did not confirm the publish: answer 503."""


@dataclass(slots=True)
class _Pending:
    payload: bytes
    future: asyncio.Future[int]
    deadline: float  # loop time


class Publisher:
    def __init__(self, client: aioredis.Redis, channel: str, timeout: float) -> None:
        self._client = client
        self._channel = channel
        self._timeout = timeout
        self._queue: list[_Pending] = []
        self._tasks = BackgroundTasks()
        self._sending = False  # a pipeline is on its way; new requests join the next one
        self._refused: str | None = None  # Redis answered the publish with an error (ACL, ...)
        self._up: bool | None = None
        self.in_flight = 0  # requests waiting for their publish to be confirmed

    async def publish(self, payload: bytes) -> int:
        """Publish one message; the number of subscribers that got it, or PublishError."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        item = _Pending(payload, loop.create_future(), started + self._timeout)
        self._queue.append(item)
        if not self._sending:
            self._sending = True
            self._tasks.start(self._send_queued(), "redis-publish")
        self.in_flight += 1
        try:
            return await item.future
        finally:
            self.in_flight -= 1
            metrics.PUBLISH_SECONDS.observe(loop.time() - started)

    async def unavailable_reason(self) -> str | None:
        """Readiness: why publishing does not work now, or None.

        A publish Redis refused (NOPERM, ...) counts until a publish succeeds; a Redis that went
        away or stopped answering counts until it answers PING on the same client again.
        """
        if self._refused:
            return self._refused
        reason = await ping_reason(self._client, timeout=min(1.0, self._timeout))
        self._report(reason)
        return reason

    async def stop(self) -> None:
        """After the server finished its requests: fail any stragglers, close the connections."""
        await self._tasks.stop()
        self._fail(self._queue, "shutdown", "worker shutting down")
        self._queue = []
        await self._client.aclose()

    async def _send_queued(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._send(batch)
        finally:
            self._sending = False

    async def _send(self, batch: list[_Pending]) -> None:
        metrics.PUBLISH_BATCH.observe(len(batch))
        try:
            async with asyncio.timeout_at(min(item.deadline for item in batch)):
                async with self._client.pipeline(transaction=False) as pipe:
                    for item in batch:
                        pipe.publish(self._channel, item.payload)
                    replies = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:  # stopped with this pipeline on its way
            self._fail(batch, "shutdown", "worker shutting down")
            raise
        except TimeoutError:
            kind, reason = "timeout", f"redis did not answer within {self._timeout:g}s"
        except REDIS_DOWN_ERRORS as exc:
            kind, reason = "redis", f"redis unavailable: {describe_error(exc)}"
        except Exception as exc:  # a bug or a bad address: still answer, and say why
            log.exception("publishing on redis failed unexpectedly")
            kind, reason = "error", f"redis publish failed: {describe_error(exc)}"
        else:
            self._refused = None
            for item, reply in zip(batch, replies, strict=True):
                if isinstance(reply, ResponseError):
                    self._refused = f"redis refused the publish: {describe_error(reply)}"
                    self._fail([item], "refused", self._refused)
                elif not item.future.done():
                    item.future.set_result(int(reply))
            self._report(self._refused)
            return
        self._fail(batch, kind, reason)
        self._report(reason)

    def _fail(self, batch: list[_Pending], kind: str, reason: str) -> None:
        waiting = [item for item in batch if not item.future.done()]
        for item in waiting:
            item.future.set_exception(PublishError(reason))
        if waiting:
            metrics.PUBLISH_ERRORS.labels(reason=kind).inc(len(waiting))

    def _report(self, reason: str | None) -> None:
        up = reason is None
        metrics.REDIS_UP.set(1 if up else 0)
        if up != self._up:
            self._up = up
            if up:
                log.info("redis publishing works", extra={"channel": self._channel})
            else:
                log.warning("redis publish failed", extra={"reason": reason})
