"""The frequency control cannot be abused: the cap holds under toggling, pages are rate-limited,
and a flood of changes with hundreds of pages open is over as soon as it stops."""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import aiohttp
import httpx
import pytest

from harness.frontend import Page, start_frontend
from harness.http_server import BackgroundHTTPServer, send
from harness.metrics import metric_value
from harness.processes import ManagedProcess
from harness.procfs import cpu_seconds
from harness.redis_server import RedisServer
from istio_burst.frontend.load.driver import LoadDriver
from istio_burst.frontend.load.send_cap import SendCap
from tests.frontend.raw_socket import RawPage, WireSocket, frame, polling_session

CAP = 100


class CountingWorker(BackgroundHTTPServer):
    """Answers every POST at once (keep-alive) and notes when each arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                with server._lock:
                    server.arrivals.append(time.monotonic())
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                send(self, 200, b"{}", "application/json")

            def log_message(self, *_: object) -> None:
                pass

        super().__init__(Handler)

    def most_in_one_second(self, since: float = 0.0) -> int:
        """The most requests that arrived in any one-second window [t, t + 1) after `since`."""
        with self._lock:
            times = sorted(t for t in self.arrivals if t >= since)
        return max(
            (bisect.bisect_left(times, start + 1.0) - i for i, start in enumerate(times)),
            default=0,
        )


@pytest.fixture
def counting_worker() -> Iterator[CountingWorker]:
    worker = CountingWorker().start()
    yield worker
    worker.stop()


@pytest.fixture
def frontend(
    redis_server: RedisServer, tmp_path: Path, counting_worker: CountingWorker
) -> Iterator[tuple[ManagedProcess, str]]:
    proc, url = start_frontend(
        redis_server, tmp_path, counting_worker.url, MAX_FREQUENCY=str(CAP), CHANNEL="unused"
    )
    yield proc, url
    proc.stop()


async def test_toggling_the_driver_never_exceeds_the_frequency(
    counting_worker: CountingWorker,
) -> None:
    """The driver itself, toggled 0 <-> 100 as fast as the loop turns, for 3 s."""
    driver = LoadDriver(counting_worker.url + "/", timeout=2.0, max_in_flight=1000)
    driver.start()
    try:
        toggles = 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            driver.set_frequency(CAP)
            await asyncio.sleep(0)
            driver.set_frequency(0)
            await asyncio.sleep(0.0005)
            toggles += 1
        driver.set_frequency(CAP)  # and then steady, for comparison
        await asyncio.sleep(2.0)
        driver.set_frequency(0)
        await asyncio.sleep(0.2)
    finally:
        await driver.stop(grace=1.0)
    most = counting_worker.most_in_one_second()
    print(f"{toggles} toggles; {len(counting_worker.arrivals)} sent; most in one second: {most}")
    assert toggles > 1000
    assert len(counting_worker.arrivals) > 150, "the driver sent next to nothing"
    assert most <= CAP + 2


async def test_a_page_toggling_0_and_100_is_limited_and_told(
    counting_worker: CountingWorker, frontend: tuple[ManagedProcess, str]
) -> None:
    proc, url = frontend
    async with Page(url) as page:
        await page.wait_for("frequency")
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 3.0:  # about the 3,700 events in 3 s of the probe
            for freq in (0, CAP):
                await page.emit("frequency", {"freq": freq})
                sent += 1
            await asyncio.sleep(0.001)
        limited = await page.wait_for("frequency_error", lambda e: e["error"] == "rate_limited")
        assert "dropped" in limited["detail"]
        await asyncio.sleep(1.1)  # the page's budget refills
        await page.set_frequency(0)
    assert sent > 1000
    most = counting_worker.most_in_one_second()
    print(f"{sent} events sent; most requests in one second: {most}")
    assert most <= CAP + 2
    dropped = await asyncio.to_thread(metric_value, url, "hashr_frontend_frequency_dropped_total")
    assert dropped > sent * 0.8, f"{dropped} of {sent} dropped"
    assert proc.alive()


async def cpu_share(pid: int, seconds: float) -> float:
    """Fraction of one core the process used over the next `seconds`."""
    before, started = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:
        yield client


async def test_301_changes_with_500_pages_open(
    frontend: tuple[ManagedProcess, str], session: aiohttp.ClientSession
) -> None:
    proc, url = frontend
    pages = [await RawPage.open(session, url) for _ in range(500)]
    try:
        async with asyncio.timeout(30):
            while not all("frequency" in p.latest for p in pages):
                await asyncio.sleep(0.1)
        idle = await cpu_share(proc.pid, 1.0)

        sender = pages[0]
        for i in range(301):
            await sender.emit("frequency", {"freq": i % CAP + 1})
        flood_over = time.monotonic()

        # Busy for at most 2 s after the last change: then back near idle.
        shares: list[float] = []
        while time.monotonic() - flood_over < 4.0:
            shares.append(await cpu_share(proc.pid, 0.5))
            if shares[-1] < max(0.25, 2 * idle) and time.monotonic() - flood_over <= 2.5:
                break
        assert time.monotonic() - flood_over <= 2.5, f"CPU by half-second: {shares}"
        print(f"idle {idle:.2f} of a core; after the flood, by half-second: {shares}")

        # Every page shows the rate in force: what a page opened now is told.
        async with Page(url) as fresh:
            in_force = (await fresh.wait_for("frequency"))["freq"]
        async with asyncio.timeout(5):
            while wrong := [p for p in pages if p.latest["frequency"]["freq"] != in_force]:
                await wrong[0].changed.wait()
                wrong[0].changed.clear()
        assert in_force > 0
    finally:
        await asyncio.gather(*(p.close() for p in pages), return_exceptions=True)
    assert proc.alive()


# Pages that keep the frontend busy: each acknowledges ACKS_PER_TICK times every LOAD_TICK s
# (10,000 events a second in all, as 2,000 pages acknowledging at 5 a second).
LOADING_PAGES = 200
ACKS_PER_TICK = 5
LOAD_TICK = 0.1
BURST = 301
EVENTS_PER_SECOND = 10  # FREQUENCY_EVENTS_PER_SECOND's default


async def test_a_burst_is_cut_when_it_arrives_while_pages_saturate_the_frontend(
    frontend: tuple[ManagedProcess, str],
) -> None:
    """301 changes in one write from one page, the frontend busy with other pages' events: at
    most the page's budget is applied, the rest are dropped, counted and the page told, as
    when the frontend is idle (the budget is spent when an event arrives, not when handled)."""
    proc, url = frontend
    loaders = [await WireSocket.open(url) for _ in range(LOADING_PAGES)]
    acks = frame('42["received",{"seq":0}]') * ACKS_PER_TICK

    async def keep_busy() -> None:
        while True:
            for page in loaders:
                page.writer.write(acks)
            await asyncio.sleep(LOAD_TICK)

    load = asyncio.create_task(keep_busy())
    sender = await WireSocket.open(url, keep=True)
    try:
        busy = await cpu_share(proc.pid, 2.0)
        before = await asyncio.to_thread(
            metric_value, url, "hashr_frontend_frequency_dropped_total"
        )
        sender.send(*(("frequency", {"freq": i % CAP + 1}) for i in range(BURST)))
        burst_at = time.monotonic()
        async with asyncio.timeout(30):
            while not sender.events("frequency_error"):
                sender.arrived.clear()
                await sender.arrived.wait()
        told_after = time.monotonic() - burst_at
        assert sender.events("frequency_error")[0]["error"] == "rate_limited"
        dropped = 0.0
        async with asyncio.timeout(30):
            while dropped < BURST - EVENTS_PER_SECOND - 2:
                await asyncio.sleep(0.2)
                dropped = (
                    await asyncio.to_thread(
                        metric_value, url, "hashr_frontend_frequency_dropped_total"
                    )
                    - before
                )
        counted_after = time.monotonic() - burst_at
        print(
            f"frontend busy at {busy:.2f} of a core; {dropped:g} of {BURST} dropped "
            f"(counted by +{counted_after:.1f} s), the page told by +{told_after:.1f} s"
        )
        assert dropped <= BURST
    finally:
        load.cancel()
        await asyncio.gather(load, return_exceptions=True)
        await asyncio.gather(*(p.close() for p in [sender, *loaders]), return_exceptions=True)
    assert proc.alive()


async def test_a_polling_page_has_the_same_budget(frontend: tuple[ManagedProcess, str]) -> None:
    """Long-polling: 30 changes in one POST, then 30 more; at most the budget applied."""
    _, url = frontend
    before = await asyncio.to_thread(metric_value, url, "hashr_frontend_frequency_dropped_total")
    async with httpx.AsyncClient(timeout=10) as http:
        session = await polling_session(http, url)
        assert (await http.post(session, content=b"40")).status_code == 200
        changes = [b'42["frequency",{"freq":%d}]' % (i % CAP + 1) for i in range(30)]
        for _ in range(2):
            assert (await http.post(session, content=b"\x1e".join(changes))).text == "OK"
        told = ""
        async with asyncio.timeout(10):
            while '"rate_limited"' not in told:
                told += (await http.get(session)).text
    dropped = await asyncio.to_thread(metric_value, url, "hashr_frontend_frequency_dropped_total")
    assert 60 - EVENTS_PER_SECOND - 2 <= dropped - before <= 60 - EVENTS_PER_SECOND


def test_the_send_cap_lets_a_jittery_schedule_through_and_nothing_beyond() -> None:
    cap = SendCap()
    cap.set_frequency(100, 0.0)
    # 10 s at 100/s, each send up to 9 ms late (a busy loop): every one admitted.
    assert all(cap.admit(k / 100 + (k * 7919 % 10) / 1000) for k in range(1000))
    # The loop stalls for 2 s and then finds 200 ticks due: one second's worth goes out.
    assert sum(cap.admit(12.0) for _ in range(200)) == 101
    assert not cap.admit(12.5)
    assert cap.admit(13.01)


def test_the_send_cap_follows_the_highest_frequency_of_the_last_second() -> None:
    cap = SendCap()
    cap.set_frequency(100, 0.0)
    assert sum(cap.admit(0.5) for _ in range(150)) == 101
    cap.set_frequency(10, 0.6)  # lowered: the last second still held 100/s
    assert sum(cap.admit(1.55) for _ in range(150)) == 101
    assert not cap.admit(2.0), "the second up to now holds 101 already"
    assert sum(cap.admit(2.6) for _ in range(150)) == 11  # from 1.6 on, 10/s (+1)
    cap.set_frequency(0, 2.7)
    cap.set_frequency(100, 2.8)  # raised again: at once
    assert sum(cap.admit(3.7) for _ in range(150)) == 101
