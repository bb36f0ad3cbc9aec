"""Hostile socket.io clients against the real frontend: memory stays bounded, it keeps serving.

The figures of the probes that found these (issue 13): an event declaring 1,000,000 attachments
took the frontend from 134 to 256 MB in 1.2 s; twenty 15 MB websocket frames left it at 770 MB;
3,000 polling POSTs declaring 10 MB each took it from 77 to 317 MB, unanswered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
import pytest

from harness.frontend import Page, start_frontend
from harness.metrics import metric_value
from harness.processes import ManagedProcess
from harness.procfs import rss_mb
from harness.redis_server import RedisServer
from tests.frontend.raw_socket import RawPage, polling_session

LIMIT = 64 * 1024
# What the frontend may grow by under each attack (it starts near 80 MB).
GROWTH_MB = 40


@pytest.fixture(scope="module")
def frontend(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ManagedProcess, str]]:
    # Nothing listens at the PROCESSOR_URL: these tests never set a frequency.
    proc, url = start_frontend(
        redis_server, tmp_path_factory.mktemp("limits"), "http://127.0.0.1:9/"
    )
    yield proc, url
    proc.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:
        yield client


async def still_serves(url: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(url + "/")).status_code == 200
    async with Page(url) as page:
        assert (await page.wait_for("frequency"))["max"] == 100


async def test_an_event_declaring_a_million_attachments_is_refused(
    frontend: tuple[ManagedProcess, str], session: aiohttp.ClientSession
) -> None:
    proc, url = frontend
    before = rss_mb(proc.pid)
    page = await RawPage.open(session, url)
    await page.ws.send_str('451000000-["frequency",{"_placeholder":true,"num":0}]')
    frame = b"\0" * 60_000
    sent = 0
    with pytest.raises((ConnectionError, aiohttp.ClientError)):
        async with asyncio.timeout(10):
            while sent < 2_000:  # 120 MB, if the server kept taking them
                await page.ws.send_bytes(frame)
                sent += 1
                await asyncio.sleep(0)
                if page.ws.closed:
                    raise ConnectionResetError("closed by the server")
    await page.close()
    after = rss_mb(proc.pid)
    print(f"attachment flood: {sent} frames of 60 KB sent; RSS {before:.0f} -> {after:.0f} MB")
    assert after - before < GROWTH_MB
    await still_serves(url)


async def test_binary_frames_and_binary_polling_packets_are_refused(
    frontend: tuple[ManagedProcess, str], session: aiohttp.ClientSession
) -> None:
    _, url = frontend
    page = await RawPage.open(session, url)
    await page.ws.send_bytes(b"4hello")
    async with asyncio.timeout(5):
        await page.ended.wait()
    assert page.ws.close_code == 1003  # unsupported data
    await page.close()

    async with httpx.AsyncClient(timeout=5) as http:
        polling = await polling_session(http, url)
        refused = await http.post(polling, content=b"40\x1ebAAAA")
    assert refused.status_code == 400
    assert "binary" in refused.json()["detail"]
    assert metric_value(url, "hashr_frontend_refused_total", reason="binary") >= 2


async def oversized_post(host: str, port: int, path: str, chunked: bool) -> tuple[bytes, float]:
    """A POST declaring 10 MB (or chunked, past the limit); its status line and seconds taken."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: 10485760"
        writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/plain\r\n%s\r\n\r\n"
            % (path.encode(), host.encode(), port, framing)
        )
        if chunked:
            # 96 KB in one write, before any answer: the server must read past the limit.
            chunk = b"4" * 32_768
            writer.write(b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)))
        # With Content-Length, the headers alone: the 10 MB are never sent, nor needed.
        async with asyncio.timeout(10):
            status = await reader.readline()
        return status, time.monotonic() - started
    finally:
        writer.close()


async def test_1000_oversized_polling_posts_are_answered_413_at_once(
    frontend: tuple[ManagedProcess, str],
) -> None:
    proc, url = frontend
    host, _, port = url.removeprefix("http://").partition(":")
    async with httpx.AsyncClient(timeout=5) as http:
        path = (await polling_session(http, url)).removeprefix(url)
    before = rss_mb(proc.pid)
    gate = asyncio.Semaphore(50)

    async def one(i: int) -> tuple[bytes, float]:
        async with gate:
            return await oversized_post(host, int(port), path, chunked=i % 2 == 1)

    answers = await asyncio.gather(*(one(i) for i in range(1_000)))
    after = rss_mb(proc.pid)
    slowest = max(seconds for _, seconds in answers)
    print(f"1,000 oversized POSTs: RSS {before:.0f} -> {after:.0f} MB; slowest {slowest:.2f} s")
    assert {status.split(b" ")[1] for status, _ in answers} == {b"413"}
    assert metric_value(url, "hashr_frontend_refused_total", reason="too_large") >= 1_000
    assert after - before < GROWTH_MB
    await still_serves(url)


async def test_twenty_15_mb_websocket_frames(
    frontend: tuple[ManagedProcess, str], session: aiohttp.ClientSession
) -> None:
    proc, url = frontend
    before = rss_mb(proc.pid)
    frame = "4" + "x" * 15_000_000

    async def one() -> None:
        page = await RawPage.open(session, url)
        try:
            try:
                await page.ws.send_str(frame)
            except ConnectionError:
                return  # the server closed the socket while the frame was still being sent
            async with asyncio.timeout(20):
                await page.ended.wait()
        finally:
            await page.close()

    # Each socket is closed by the server, mid-frame or after it; none hangs or fails to open.
    results = await asyncio.gather(*(one() for _ in range(20)), return_exceptions=True)
    assert results == [None] * 20, results
    after = rss_mb(proc.pid)
    print(f"twenty 15 MB frames: RSS {before:.0f} -> {after:.0f} MB")
    assert after - before < GROWTH_MB
    await still_serves(url)


async def test_a_polling_post_after_the_page_closed_its_session_is_answered_400(
    frontend: tuple[ManagedProcess, str],
) -> None:
    """A long-polling page that leaves sends a close packet; a POST of its already in flight
    then finds the session closed. Engine.IO raises there (KeyError) and the page got a 500 and
    the log a traceback (seen in the soak, where pages come and go); it is a 400 now."""
    proc, url = frontend
    async with httpx.AsyncClient(timeout=5) as http:
        session = await polling_session(http, url)
        assert (await http.post(session, content=b"40")).status_code == 200
        assert (await http.post(session, content=b"1")).status_code == 200  # close
        late = await http.post(session, content=b'42["received",{"seq":1}]')
    assert late.status_code == 400, late.text
    assert "Exception in ASGI application" not in proc.output()
    await still_serves(url)
