"""The load driver in process: what it does when its own process stalls or the worker is silent."""

from __future__ import annotations

import asyncio
import time

from istio_burst.frontend.load.driver import LATE_LIMIT, LoadDriver
from tests.frontend.raw_http import RawServer, echo_forever


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # reads until the client gives up; never answers


async def test_a_stall_is_caught_up_to_a_limit_and_the_rest_skipped() -> None:
    async with RawServer(echo_forever) as server:
        driver = LoadDriver(server.url, timeout=2.0, max_in_flight=1000)
        driver.start()
        try:
            driver.set_frequency(50)
            await asyncio.sleep(0.3)
            stats = driver.stats["default"]
            sent_before = stats.ok + stats.failed
            time.sleep(LATE_LIMIT + 1.0)  # the whole process stalls: nothing runs
            await asyncio.sleep(0.5)
            driver.set_frequency(0)
        finally:
            await driver.stop(grace=1.0)
    # About a second of ticks were too late and dropped; the last LATE_LIMIT seconds went out.
    assert 20 <= stats.skipped <= 80, stats
    caught_up = stats.ok + stats.failed - sent_before
    assert caught_up >= 0.5 * LATE_LIMIT * 50, stats
    assert stats.failed == 0, stats


async def test_a_silent_worker_fills_the_cap_and_no_more() -> None:
    async with RawServer(silent) as server:
        driver = LoadDriver(server.url, timeout=1.0, max_in_flight=5)
        driver.start()
        try:
            driver.set_frequency(100)
            await asyncio.sleep(0.5)
            assert driver.in_flight == 5
            assert driver.stats["default"].skipped > 0
            driver.set_frequency(0)
            await asyncio.sleep(1.5)  # every request times out (after 1 s)
            assert driver.in_flight == 0
            assert driver.stats["default"].failed == 5
            assert "1s" in (driver.stats["default"].last_error or "")
        finally:
            await driver.stop(grace=1.0)
