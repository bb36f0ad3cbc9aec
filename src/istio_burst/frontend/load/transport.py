"""A lean httpx transport for the load driver: HTTP/1.1 keep-alive straight on asyncio.

httpx's default transport (httpcore on anyio) costs about 1.2 ms of CPU per request on a 2-core
test machine, and its pool bookkeeping grows with the square of the open connections: it caps
the driver near 400 requests/s. This one parses with httptools (already there for uvicorn) and
costs a tenth of that, so the driver holds 1000 requests/s. It plugs into the shared
`httpx.AsyncClient` through httpx's documented transport interface; the client, its timeouts and
its errors stay httpx's. Plain http:// only (workers in the mesh or on this machine); anything
else goes through httpx's default transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import httptools
import httpx

_Response = tuple[int, list[tuple[bytes, bytes]], bytes, bool]


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, the response parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[_Response] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"bad response from the worker: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        self.closed = True
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(httpx.RemoteProtocolError("the worker closed the connection mid-response"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(
                (
                    self._parser.get_status_code(),
                    self._headers,
                    b"".join(self._body),
                    self._parser.should_keep_alive(),
                )
            )

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    async def exchange(self, message: bytes) -> _Response:
        assert self.transport is not None
        self._headers, self._body = [], []
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(message)
        return await self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class KeepAliveTransport(httpx.AsyncBaseTransport):
    def __init__(self, max_idle_per_host: int = 64) -> None:
        self._max_idle = max_idle_per_host
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._fallback = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            return await self._fallback.handle_async_request(request)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        key = (request.url.host, request.url.port or 80)
        connection = self._take_idle(key) or await _connect(key, timeouts.get("connect"), request)
        message = _serialize(request, await request.aread())
        try:
            async with asyncio.timeout(timeouts.get("read")):
                status, headers, body, keep_alive = await connection.exchange(message)
        except TimeoutError:
            connection.close()
            raise httpx.ReadTimeout("no response in time", request=request) from None
        except BaseException:
            # Cancelled or broken mid-exchange: a late response must not reach the next request.
            connection.close()
            raise
        if keep_alive and not connection.closed:
            self._give_back(key, connection)
        else:
            connection.close()
        return httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions={"http_version": b"HTTP/1.1"},
        )

    def _take_idle(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    def _give_back(self, key: tuple[str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < self._max_idle:
            idle.append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        await self._fallback.aclose()


async def _connect(
    key: tuple[str, int], timeout: float | None, request: httpx.Request
) -> _Connection:
    factory: Callable[[], Any] = _Connection
    try:
        async with asyncio.timeout(timeout):
            _, protocol = await asyncio.get_running_loop().create_connection(factory, *key)
    except TimeoutError:
        where = f"{key[0]}:{key[1]}"
        raise httpx.ConnectTimeout(f"no connection to {where} in time", request=request) from None
    except OSError as exc:
        raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
    assert isinstance(protocol, _Connection)
    return protocol


_FRAMING = (b"content-length", b"transfer-encoding")


def _serialize(request: httpx.Request, body: bytes) -> bytes:
    """The request as bytes; the body was read whole, so it is framed by Content-Length."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    lines.extend(
        b"%s: %s" % (name, value)
        for name, value in request.headers.raw
        if name.lower() not in _FRAMING
    )
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
