"""Publishing on Redis over one pipelined connection: a 200 means Redis confirmed the PUBLISH.

Everything requests publish within one event-loop iteration goes out in one write; replies are
matched to requests in order as they arrive, with no wait for earlier writes. redis-py parses each
reply through several layers of Python (a timeout context per reply); a PUBLISH reply is always
one line, `:<receivers>` or `-<error>`, so here reading replies is a split. The address is parsed
by redis-py's own `parse_url`, so REDIS_URL means the same as for the readiness check: redis://,
rediss:// (TLS), unix://, with user and password.

Deadlines: each request waits at most `timeout` s. A request still unsent at its deadline (Redis
not reachable) is failed unsent; a sent one whose reply is overdue means Redis has stopped
answering, so the connection is dropped and every request waiting on it fails. Either way a 503
means "not confirmed", and the message was almost surely not published (the exception: Redis ran
the command and the reply was lost, which no client can tell apart from a lost command).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.connection import parse_url

from istio_burst.core.redis import REDIS_DOWN_ERRORS, describe_error
from istio_burst.worker import metrics

log = logging.getLogger(__name__)

_CRLF = b"\r\n"


class PublishError(Exception):
    """Redis did not confirm the publish: answer 503."""


def publish_command(channel: bytes, payload: bytes) -> bytes:
    return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (
        len(channel),
        channel,
        len(payload),
        payload,
    )


def command(args: Sequence[bytes]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    parts += [b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in args]
    return b"".join(parts)


class _Pending:
    __slots__ = ("future", "payload", "sent")

    def __init__(self, payload: bytes, future: asyncio.Future[int]) -> None:
        self.payload = payload
        self.future = future
        self.sent = False


class _Auth:
    """Stands in the reply queue for the AUTH sent on connecting."""


_AUTH = _Auth()


class _Connection(asyncio.Protocol):
    """One connection's transport and the requests waiting for its replies, in order."""

    def __init__(self, publisher: RedisPublisher) -> None:
        self.publisher = publisher
        self.transport: asyncio.Transport | None = None
        self.awaiting_reply: deque[_Pending | _Auth] = deque()
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        lines = (self.buffer + data).split(_CRLF)
        self.buffer = lines.pop()
        self.publisher.replies_received(self, lines)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = "redis closed the connection" + (f": {describe_error(exc)}" if exc else "")
        self.publisher.connection_lost(self, f"redis unavailable: {reason}")

    def fail_all(self, reason: str) -> int:
        failed = 0
        while self.awaiting_reply:
            waiting = self.awaiting_reply.popleft()
            if isinstance(waiting, _Pending):
                failed += _fail(waiting.future, reason)
        return failed


class RedisPublisher:
    def __init__(self, url: str, channel: str, timeout: float) -> None:
        self._target: dict[str, Any] = dict(parse_url(url))
        self._tls = urlsplit(url).scheme == "rediss"
        self._channel = channel.encode()
        self._timeout = timeout
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._unsent: list[_Pending] = []
        self._flush_scheduled = False
        self._redis_up: bool | None = None
        self._closed = False
        self.in_flight = 0  # requests waiting for their publish to be confirmed

    # --- the request side ---------------------------------------------------------------

    async def publish(self, payload: bytes) -> int:
        """Publish one message; the number of subscribers that got it, or PublishError."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        item = _Pending(payload, loop.create_future())
        self._unsent.append(item)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        deadline = loop.call_later(self._timeout, self._deadline_passed, item)
        self.in_flight += 1
        try:
            return await item.future
        finally:
            self.in_flight -= 1
            deadline.cancel()
            metrics.PUBLISH_SECONDS.observe(loop.time() - started)

    async def stop(self) -> None:
        """After the server finished its requests: close the connection, fail any stragglers."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        self._fail_unsent("worker shutting down")
        if self._connection is not None:
            self._drop(self._connection, "worker shutting down")

    def _flush(self) -> None:
        self._flush_scheduled = False
        connection = self._connection
        if connection is None or connection.transport is None or connection.transport.is_closing():
            if self._connecting is None and not self._closed:
                self._connecting = asyncio.get_running_loop().create_task(self._connect())
            return  # _connect flushes once connected, or fails the waiting requests
        batch = [item for item in self._unsent if not item.future.done()]
        self._unsent = []
        if not batch:
            return
        for item in batch:
            item.sent = True
        connection.awaiting_reply.extend(batch)
        metrics.PUBLISH_BATCH.observe(len(batch))
        connection.transport.write(
            b"".join([publish_command(self._channel, item.payload) for item in batch])
        )

    def _deadline_passed(self, item: _Pending) -> None:
        if item.future.done():
            return
        reason = f"redis did not answer within {self._timeout:g}s"
        if item.sent and self._connection is not None:
            # Sent and not answered in time: Redis stopped answering on this connection.
            self._set_redis_up(False, reason)
            self._drop(self._connection, reason)
        if _fail(item.future, reason):
            metrics.PUBLISH_ERRORS.labels(reason="timeout").inc()

    # --- the connection -----------------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        target = self._target
        connection = _Connection(self)
        try:
            async with asyncio.timeout(self._timeout):
                if "path" in target:
                    transport, _ = await loop.create_unix_connection(
                        lambda: connection, target["path"]
                    )
                else:
                    host = target.get("host", "localhost")
                    transport, _ = await loop.create_connection(
                        lambda: connection,
                        host,
                        int(target.get("port", 6379)),
                        ssl=self._ssl_context() if self._tls else None,
                        server_hostname=host if self._tls else None,
                    )
        except REDIS_DOWN_ERRORS as exc:
            reason = f"redis unavailable: {describe_error(exc)}"
            self._set_redis_up(False, reason)
            metrics.PUBLISH_ERRORS.labels(reason="redis").inc(self._fail_unsent(reason))
            return
        except Exception as exc:  # a bug or a bad address: still answer, and say why
            log.exception("connecting to redis failed unexpectedly")
            reason = f"redis connection failed: {describe_error(exc)}"
            metrics.PUBLISH_ERRORS.labels(reason="error").inc(self._fail_unsent(reason))
            return
        finally:
            self._connecting = None
        connection.transport = transport  # uvloop may call connection_made only later
        self._connection = connection
        password = target.get("password")
        if password:
            args = [b"AUTH", password.encode()]
            if target.get("username"):
                args.insert(1, target["username"].encode())
            connection.awaiting_reply.append(_AUTH)
            connection.transport.write(command(args))
        self._flush()

    def replies_received(self, connection: _Connection, lines: list[bytes]) -> None:
        confirmed = False
        for line in lines:
            if not connection.awaiting_reply:
                self._drop(connection, f"unexpected reply from redis: {line[:80]!r}")
                return
            waiting = connection.awaiting_reply.popleft()
            if isinstance(waiting, _Auth):
                if not line.startswith(b"+OK"):
                    reason = f"redis refused AUTH: {line[1:].decode('utf-8', 'replace')}"
                    self._set_redis_up(False, reason)
                    self._drop(connection, reason)
                    return
            elif line.startswith(b":"):
                confirmed = True
                if not waiting.future.done():
                    waiting.future.set_result(int(line[1:]))
            elif line.startswith(b"-"):
                metrics.PUBLISH_ERRORS.labels(reason="refused").inc()
                detail = line[1:].decode("utf-8", "replace")
                _fail(waiting.future, f"redis refused the publish: {detail}")
            else:
                self._drop(connection, f"unexpected reply from redis: {line[:80]!r}")
                return
        if confirmed:
            self._set_redis_up(True, None)

    def connection_lost(self, connection: _Connection, reason: str) -> None:
        if connection is self._connection:
            self._connection = None
        failed = connection.fail_all(reason)
        if failed:
            metrics.PUBLISH_ERRORS.labels(reason="redis").inc(failed)
            self._set_redis_up(False, reason)
        if self._unsent and not self._flush_scheduled and not self._closed:
            self._flush_scheduled = True  # they were waiting for this connection: reconnect
            asyncio.get_running_loop().call_soon(self._flush)

    def _drop(self, connection: _Connection, reason: str) -> None:
        """Fail every request waiting on this connection and close it (replies out of step)."""
        if connection is self._connection:
            self._connection = None
        metrics.PUBLISH_ERRORS.labels(reason="redis").inc(connection.fail_all(reason))
        if connection.transport is not None:
            connection.transport.abort()

    def _fail_unsent(self, reason: str) -> int:
        unsent, self._unsent = self._unsent, []
        return sum(_fail(item.future, reason) for item in unsent)

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self._target.get("ssl_ca_certs"))
        if str(self._target.get("ssl_cert_reqs", "required")).lower() in ("none", "optional"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _set_redis_up(self, up: bool, reason: str | None) -> None:
        metrics.REDIS_UP.set(1 if up else 0)
        if up != self._redis_up:
            self._redis_up = up
            if up:
                log.info("redis publishing works", extra={"channel": self._channel.decode()})
            else:
                log.warning("redis publish failed", extra={"reason": reason})


def _fail(future: asyncio.Future[int], reason: str) -> bool:
    if future.done():
        return False
    future.set_exception(PublishError(reason))
    return True
