"""The driver's keep-alive transport against real sockets: reuse, errors, timeouts, framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from harness.ports import free_port
from istio_burst.frontend.load.transport import KeepAliveTransport
from tests.frontend.raw_http import RawServer, echo_forever, ok_response, read_request


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=KeepAliveTransport(), timeout=1.0) as http:
        yield http


async def test_requests_share_one_kept_alive_connection(client: httpx.AsyncClient) -> None:
    async with RawServer(echo_forever) as server:
        for n in range(5):
            response = await client.post(server.url, json={"str": f"s{n}"})
            assert response.status_code == 200
            assert response.json() == {"str": f"s{n}"}
        assert server.connections == 1


async def test_connection_close_is_respected(client: httpx.AsyncClient) -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        writer.write(ok_response(body, b"Connection: close\r\n"))
        await writer.drain()

    async with RawServer(once) as server:
        for _ in range(3):
            assert (await client.post(server.url, content=b"x")).content == b"x"
        assert server.connections == 3


async def test_chunked_responses_are_decoded(client: httpx.AsyncClient) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        writer.write(head + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        await writer.drain()

    async with RawServer(chunked) as server:
        assert (await client.post(server.url, content=b"x")).content == b"abcde"


async def test_nobody_listening_is_a_connect_error(client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.ConnectError):
        await client.post(f"http://127.0.0.1:{free_port()}/", content=b"x")


async def test_a_server_that_hangs_up_mid_response(client: httpx.AsyncClient) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    async with RawServer(hang_up) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(server.url, content=b"x")


async def test_a_silent_server_times_out_and_its_connection_is_dropped(
    client: httpx.AsyncClient,
) -> None:
    async def slow_then_fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        if body == b"slow":
            await asyncio.sleep(1.5)  # the late answer must not reach the next request
        writer.write(ok_response(b"late" if body == b"slow" else body))
        await echo_forever(reader, writer)

    async with RawServer(slow_then_fast) as server:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(server.url, content=b"slow")
        assert (await client.post(server.url, content=b"next")).content == b"next"
        assert server.connections == 2
