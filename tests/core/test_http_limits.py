"""HTTP limits on real processes (issue 13): header floods and 10,000 headers are refused with
431 and the connection closed, with memory bounded; slow connections of four kinds are dropped by
their deadlines while a normal client keeps getting answers; past MAX_CONNECTIONS new requests get
503. The worker gets every probe; the frontend and the watcher, which share core/server.py, the
quick ones. Deadlines are made small through the settings so each test stays fast."""

from __future__ import annotations

import asyncio
import inspect
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from harness.frontend import start_frontend
from harness.metrics import sample_sum
from harness.processes import ManagedProcess
from harness.procfs import rss_mb
from harness.redis_server import RedisServer
from harness.services import start_service, start_worker
from istio_burst.core.http_limits import LimitedHttpToolsProtocol
from tests.frontend.raw_socket import WireSocket

DEADLINE = 1.0  # HEADER_TIMEOUT, BODY_TIMEOUT and KEEPALIVE_TIMEOUT in these tests
SMALL_DEADLINES = {
    "HEADER_TIMEOUT": str(DEADLINE),
    "BODY_TIMEOUT": str(DEADLINE),
    "KEEPALIVE_TIMEOUT": str(DEADLINE),
}
FLOOD_BYTES = 200 * 1024 * 1024  # what the probe sent: 200 MB of header lines on one connection
RSS_GROWTH_BOUND_MB = 20.0
SLOW_KIND = 50  # connections of each slow kind (4 kinds: 200 in all)


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def exchange(url: str, request: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes; b"" when it closed without answering."""
    with socket.create_connection(address(url), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def flood(url: str, request_start: bytes, chunk: bytes, limit: int) -> tuple[int, bool]:
    """Stream `chunk`s after `request_start` until the server closes or `limit` bytes went out.
    Returns the bytes sent and whether the server closed the connection."""
    sent = 0
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(request_start)
        try:
            while sent < limit:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return sent, True
        return sent, False


@pytest.fixture
def worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[ManagedProcess, str]]:
    proc, url = start_worker(redis_server, tmp_path, **SMALL_DEADLINES)
    yield proc, url
    proc.stop()


@pytest.mark.parametrize(
    "chunk",
    [
        pytest.param(b"X-Flood: " + b"a" * 1000 + b"\r\n", id="header-lines"),
        pytest.param(b"a" * 1024, id="one-endless-header"),
    ],
)
def test_a_header_flood_is_cut_off_with_memory_bounded(
    worker: tuple[ManagedProcess, str], chunk: bytes
) -> None:
    proc, url = worker
    before = rss_mb(proc.pid)
    sent, closed = flood(url, b"GET / HTTP/1.1\r\nHost: x\r\nX-Start: ", chunk * 64, FLOOD_BYTES)
    after = rss_mb(proc.pid)
    assert closed, f"the worker read {sent} bytes of headers without closing the connection"
    assert sent < FLOOD_BYTES
    assert after - before < RSS_GROWTH_BOUND_MB, f"RSS {before:.0f} -> {after:.0f} MB"
    assert httpx.get(url + "/", timeout=5).status_code == 200  # and it still serves


def test_too_large_headers_and_too_many_headers_get_431(worker: tuple[ManagedProcess, str]) -> None:
    _, url = worker
    big = exchange(url, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    assert status_of(big) == 431, big[:200]
    assert b"over 16384 bytes" in big

    many = b"".join(b"X-%d: v\r\n" % i for i in range(10_000))
    answer = exchange(url, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status_of(answer) == 431, answer[:200]
    assert b"more than 100 headers" in answer
    assert b"connection: close" in answer

    # 100 headers are fine.
    some = b"".join(b"X-%d: v\r\n" % i for i in range(98))
    fine = exchange(url, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + some + b"\r\n")
    assert status_of(fine) == 200, fine[:200]


class SlowClient:
    """One connection that misbehaves in one way until the server closes it."""

    def __init__(self, url: str, kind: str) -> None:
        self.url = url
        self.kind = kind
        self.answer = b""
        self.reset = False  # it kept writing after the server closed: the answer may be lost
        self.closed_after: float | None = None

    async def run(self, give_up: float) -> None:
        host, port = address(self.url)
        reader, writer = await asyncio.open_connection(host, port)
        started = time.monotonic()
        post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        opening, trickle = {
            "idle": (b"", b""),
            "endless-headers": (b"GET / HTTP/1.1\r\nHost: x\r\n", b"X"),  # never a blank line
            "short-body": (post + b'Content-Length: 100\r\n\r\n{"str"', b""),
            "endless-chunked": (post + b"Transfer-Encoding: chunked\r\n\r\n", b"1\r\na\r\n"),
        }[self.kind]
        writer.write(opening)
        reading = asyncio.create_task(reader.read())  # until the server closes
        try:
            while not reading.done() and time.monotonic() - started < give_up:
                if trickle:
                    writer.write(trickle)  # the client is active, just never done
                await asyncio.wait({reading}, timeout=0.2)
            if reading.done():
                self.answer = reading.result()
                self.closed_after = time.monotonic() - started
        except ConnectionError:
            self.reset = True
            self.closed_after = time.monotonic() - started
        finally:
            reading.cancel()
            writer.close()


async def test_slow_connections_are_dropped_while_a_normal_client_is_served(
    worker: tuple[ManagedProcess, str],
) -> None:
    _, url = worker
    give_up = DEADLINE + 15  # generous: the machine is shared; the deadline is 1 s
    slow = [
        SlowClient(url, kind)
        for kind in ("idle", "endless-headers", "short-body", "endless-chunked")
        for _ in range(SLOW_KIND)
    ]
    latencies: list[float] = []
    statuses: list[int] = []
    attack = asyncio.gather(*(client.run(give_up) for client in slow))
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while not attack.done():
            started = time.monotonic()
            response = await http.post("/", json={"str": "still served"})
            latencies.append(time.monotonic() - started)
            statuses.append(response.status_code)
            await asyncio.sleep(0.01)
    await attack

    still_open = [c.kind for c in slow if c.closed_after is None]
    assert sum(status_of(c.answer) == 408 for c in slow) >= SLOW_KIND  # most were told why
    assert not still_open, f"{len(still_open)} slow connections still open: {set(still_open)}"
    for client in slow:
        if client.kind == "idle":
            assert client.answer == b""  # an idle connection is just closed
        elif not client.reset:
            assert status_of(client.answer) == 408, (client.kind, client.answer[:200])
    assert statuses and set(statuses) == {200}, set(statuses)
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]
    slowest_drop = max(c.closed_after or 0 for c in slow)
    # Timing is reported, not asserted (issue 13 asks p99 < 50 ms; see the report).
    print(
        f"\nnormal client during 200 slow connections: {len(latencies)} requests, "
        f"p99 {p99 * 1000:.1f} ms; last slow connection dropped after {slowest_drop:.1f} s"
    )


def hash_request(url: str) -> httpx.Response:
    return httpx.post(url + "/", json={"str": "a"}, timeout=5)


def test_past_max_connections_new_requests_get_503(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    proc, url = start_worker(
        redis_server, tmp_path, MAX_CONNECTIONS="20", KEEPALIVE_TIMEOUT="60", HEADER_TIMEOUT="60"
    )
    held: list[socket.socket] = []
    try:
        for _ in range(25):
            held.append(socket.create_connection(address(url), timeout=5))
        deadline = time.monotonic() + 10
        while (answer := hash_request(url)).status_code != 503:
            assert time.monotonic() < deadline, "no 503 with 25 connections held open"
            time.sleep(0.05)
        assert answer.status_code == 503
        # Full is not dead: probes and scrapes are answered, and the refusals counted there.
        assert httpx.get(url + "/_healthz", timeout=5).status_code == 200
        metrics = httpx.get(url + "/metrics", timeout=5)
        assert metrics.status_code == 200
        assert sample_sum(metrics.text, "hashr_http_over_capacity_total", kind="http") >= 1
        # GET / is the liveness probe, answered too.
        assert httpx.get(url + "/", timeout=5).status_code == 200
        for sock in held:
            sock.close()
        held = []
        deadline = time.monotonic() + 10
        while hash_request(url).status_code != 200:
            assert time.monotonic() < deadline, "still 503 after the connections closed"
            time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()
        proc.stop()


async def test_past_max_connections_websocket_handshakes_get_503_and_open_pages_stay(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    proc, url = start_frontend(redis_server, tmp_path, "http://127.0.0.1:9/", MAX_CONNECTIONS="20")
    pages: list[WireSocket] = []
    try:
        refusal = ""
        for _ in range(25):
            try:
                pages.append(await WireSocket.open(url, keep=True))
            except ConnectionRefusedError as exc:
                refusal = str(exc)
                break
        assert refusal.startswith("HTTP/1.1 503"), f"{len(pages)} websockets opened, {refusal!r}"
        assert 15 <= len(pages) <= 20
        async with httpx.AsyncClient(timeout=5) as http:
            for probe in ("/", "/_healthz", "/metrics"):
                assert (await http.get(url + probe)).status_code == 200, probe
            assert (await http.get(url + "/static/app.css")).status_code == 503
            scraped = (await http.get(url + "/metrics")).text
        assert sample_sum(scraped, "hashr_http_over_capacity_total", kind="websocket") >= 1
        # Every open page is still served: a change from one reaches them all.
        pages[0].send(("frequency", {"freq": 7}))
        async with asyncio.timeout(10):
            for page in pages:
                while not any(e["freq"] == 7 for e in page.events("frequency")):
                    page.arrived.clear()
                    await page.arrived.wait()
        await asyncio.gather(*(page.close() for page in pages[-3:]))
        del pages[-3:]
        async with asyncio.timeout(10):
            while True:
                try:
                    pages.append(await WireSocket.open(url))
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(0.1)
    finally:
        await asyncio.gather(*(page.close() for page in pages), return_exceptions=True)
        proc.stop()


def test_api_docs_can_be_turned_off(redis_server: RedisServer, tmp_path: Path) -> None:
    proc, url = start_worker(redis_server, tmp_path, API_DOCS="false")
    try:
        for path in ("/docs", "/redoc", "/openapi.json"):
            response = httpx.get(url + path, timeout=5)
            assert response.status_code == 404, path
            assert response.json()["error"] == "not_found"
        assert httpx.post(url + "/", json={"str": "abc"}, timeout=5).status_code == 200
    finally:
        proc.stop()
    proc, url = start_worker(redis_server, tmp_path)
    try:
        assert httpx.get(url + "/openapi.json", timeout=5).status_code == 200
    finally:
        proc.stop()


@pytest.fixture(params=["frontend", "watcher"])
def other_service(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[ManagedProcess, str, str]]:
    if request.param == "frontend":
        env = {"REDIS_URL": redis_server.host_port, "PROCESSOR_URL": "http://127.0.0.1:9"}
        ready = "/"
    else:
        env = {
            "PROMETHEUS_URL": "http://127.0.0.1:9",
            "ACTUATOR": "istio",
            "KUBECONFIG": str(tmp_path / "missing-kubeconfig"),
            "PUBLISH_STATE": "false",
        }
        ready = "/livez"
    proc, url = start_service(request.param, tmp_path, ready, **env, **SMALL_DEADLINES)
    yield proc, url, ready
    proc.stop()


def test_the_frontend_and_the_watcher_live_by_the_same_limits(
    other_service: tuple[ManagedProcess, str, str],
) -> None:
    proc, url, ready = other_service
    before = rss_mb(proc.pid)
    sent, closed = flood(url, b"GET / HTTP/1.1\r\nHost: x\r\nX-Start: ", b"a" * 65536, FLOOD_BYTES)
    assert closed and sent < FLOOD_BYTES
    assert rss_mb(proc.pid) - before < RSS_GROWTH_BOUND_MB

    many = b"".join(b"X-%d: v\r\n" % i for i in range(10_000))
    assert status_of(exchange(url, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")) == 431

    started = time.monotonic()
    slow = exchange(url, b"GET / HTTP/1.1\r\nHost: x\r\n", timeout=DEADLINE + 15)
    assert status_of(slow) == 408, slow[:200]
    print(f"\n{url}: headers deadline enforced after {time.monotonic() - started:.1f} s")

    assert httpx.get(url + ready, timeout=5).status_code == 200


def test_every_hook_the_limits_use_is_still_uvicorns() -> None:
    """The limits live in methods of uvicorn's httptools protocol, which are not its public API:
    a rename or a new signature there would silently bypass them (uvicorn is pinned to the
    minor version they were written for; this says what to look at when moving the pin)."""
    hooks = [
        name
        for name, value in vars(LimitedHttpToolsProtocol).items()
        if callable(value) and not name.startswith("_")
    ]
    assert "handle_websocket_upgrade" in hooks and "on_headers_complete" in hooks
    for name in hooks:
        if name == "with_limits":
            continue
        ours = inspect.signature(getattr(LimitedHttpToolsProtocol, name))
        theirs = inspect.signature(getattr(HttpToolsProtocol, name))
        assert list(ours.parameters) == list(theirs.parameters), name
    # What the deadlines and the cap read of uvicorn's state.
    source = inspect.getsource(HttpToolsProtocol)
    for used in ("self.connections", "self.cycle", "self.timeout_keep_alive", "self.url"):
        assert used in source, used
    assert "response_started" in inspect.getsource(RequestResponseCycle)


async def test_a_websocket_outlives_every_http_deadline(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Once upgraded, the connection is the websocket's: no 408 and no close from the request
    deadlines, however long the page stays."""
    proc, url = start_frontend(redis_server, tmp_path, "http://127.0.0.1:9/", **SMALL_DEADLINES)
    page = await WireSocket.open(url, keep=True)
    try:
        await asyncio.sleep(3 * DEADLINE)
        page.send(("frequency", {"freq": 3}))
        async with asyncio.timeout(10):
            while not any(e["freq"] == 3 for e in page.events("frequency")):
                page.arrived.clear()
                await page.arrived.wait()
        assert not page.ended.is_set()
    finally:
        await page.close()
        proc.stop()
