"""A Redis connection that only PUBLISHes: a batch of commands in one write, replies in one read.

redis-py parses every reply through several layers of Python (a timeout context per reply, RESP3
push handling); at a few thousand publishes a second that was a third of the worker's CPU. A
PUBLISH reply is always one line, `:<receivers>` or `-<error>`, so reading them is a split.
The address is parsed by redis-py's own `parse_url`, so REDIS_URL means the same here as for the
readiness check: redis://, rediss:// (TLS), unix://, with user and password.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.connection import parse_url

_CRLF = b"\r\n"
_READ_SIZE = 1 << 16


class ReplyError(Exception):
    """Redis refused a command (an `-ERR ...` reply); the connection is still fine."""


class ConnectionLostError(ConnectionError):
    """The connection failed part-way; `replies` holds the replies that did arrive, in order."""

    def __init__(self, message: str, replies: Sequence[int | ReplyError] = ()) -> None:
        super().__init__(message)
        self.replies = list(replies)


def publish_command(channel: bytes, payload: bytes) -> bytes:
    return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (
        len(channel),
        channel,
        len(payload),
        payload,
    )


def parse_reply(line: bytes) -> int | ReplyError:
    if line.startswith(b":"):
        return int(line[1:])
    if line.startswith(b"-"):
        return ReplyError(line[1:].decode("utf-8", "replace"))
    raise ConnectionLostError(f"unexpected reply from redis: {line[:80]!r}")


class PublishConnection:
    """One connection, used by one task at a time; (re)connects on demand.

    Callers bound the time of every call (asyncio.timeout); any failure or cancellation closes the
    connection, since replies would no longer line up with commands.
    """

    def __init__(self, url: str) -> None:
        self._target: dict[str, Any] = dict(parse_url(url))
        self._tls = urlsplit(url).scheme == "rediss"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def publish_many(
        self, channel: bytes, payloads: Sequence[bytes]
    ) -> list[int | ReplyError]:
        """PUBLISH each payload on `channel`; each reply in order (receiver count or error)."""
        commands = b"".join([publish_command(channel, payload) for payload in payloads])
        reused = self._writer is not None
        try:
            return await self._exchange(commands, len(payloads))
        except ConnectionLostError as exc:
            if not reused or exc.replies:
                raise
        # A connection left idle across a Redis restart fails on first use, before Redis saw
        # anything: one try on a fresh connection.
        return await self._exchange(commands, len(payloads))

    def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()  # no wait: this also runs while a timeout cancels us

    async def _exchange(self, commands: bytes, count: int) -> list[int | ReplyError]:
        try:
            if self._writer is None:
                await self._connect()
            assert self._reader is not None and self._writer is not None
            self._writer.write(commands)
            await self._writer.drain()
            return await self._read_replies(self._reader, count)
        except ConnectionLostError:
            self.close()
            raise
        except (OSError, EOFError) as exc:  # refused, reset, broken pipe: all mean "gone"
            self.close()
            raise ConnectionLostError(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            self.close()
            raise

    async def _read_replies(
        self, reader: asyncio.StreamReader, count: int
    ) -> list[int | ReplyError]:
        buffer = b""
        while buffer.count(_CRLF) < count:
            chunk = await reader.read(_READ_SIZE)
            if not chunk:
                done = buffer.split(_CRLF)[:-1]
                raise ConnectionLostError(
                    "redis closed the connection", [parse_reply(line) for line in done]
                )
            buffer += chunk
        lines = buffer.split(_CRLF)
        if len(lines) != count + 1 or lines[-1]:
            raise ConnectionLostError("redis sent more replies than commands")
        return [parse_reply(line) for line in lines[:-1]]

    async def _connect(self) -> None:
        target = self._target
        if "path" in target:
            reader, writer = await asyncio.open_unix_connection(target["path"])
        else:
            host = target.get("host", "localhost")
            reader, writer = await asyncio.open_connection(
                host,
                int(target.get("port", 6379)),
                ssl=self._ssl_context() if self._tls else None,
                server_hostname=host if self._tls else None,
            )
        self._reader, self._writer = reader, writer
        password = target.get("password")
        if password:
            args = [b"AUTH", password.encode()]
            if target.get("username"):
                args.insert(1, target["username"].encode())
            writer.write(_command(args))
            await writer.drain()
            line = await reader.readuntil(_CRLF)
            if not line.startswith(b"+OK"):
                raise ConnectionLostError(
                    f"redis refused AUTH: {line.strip().decode('utf-8', 'replace')}"
                )

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self._target.get("ssl_ca_certs"))
        if str(self._target.get("ssl_cert_reqs", "required")).lower() in ("none", "optional"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _command(args: Sequence[bytes]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)
