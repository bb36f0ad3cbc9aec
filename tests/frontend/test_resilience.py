"""Redis restarting, a worker gone or hung: the frontend says so, counts it, and carries on."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.frontend import Page, Stack, start_stack
from harness.redis_server import RedisServer
from istio_burst.core.contracts import FRONTEND_REQUESTS_METRIC


@pytest.fixture
def own_stack(own_redis: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    """Worker and frontend on a Redis this test may stop; requests give up after 1 s."""
    running = start_stack(own_redis, tmp_path, REQUEST_TIMEOUT="1", MAX_IN_FLIGHT="8")
    yield running
    running.stop()


async def test_the_stream_resumes_after_redis_restarts(own_stack: Stack) -> None:
    redis = own_stack.redis
    async with Page(own_stack.url) as page:
        await page.set_frequency(20)
        await page.wait_for("hashes")

        redis.stop()
        down = await page.wait_for("stats", lambda s: not s["redis"]["up"], timeout=10)
        assert down["redis"]["reason"]
        ready = httpx.get(own_stack.url + "/_healthz", timeout=5)
        assert ready.status_code == 503
        assert "redis" in ready.json()["reason"]

        redis.start()
        back = page.mark()
        # Re-subscribed by itself: hashes flow to the same, still connected page.
        await page.wait_for("hashes", since=back, timeout=15)
        await page.wait_for("stats", lambda s: s["redis"]["up"], since=back)
        assert httpx.get(own_stack.url + "/_healthz", timeout=5).status_code == 200
        await page.set_frequency(0)
    assert own_stack.frontend.alive() and own_stack.worker.alive()


async def test_a_stopped_worker_is_shown_and_counted(own_stack: Stack) -> None:
    async with Page(own_stack.url) as page:
        await page.set_frequency(20)
        await page.wait_for("hashes")
        own_stack.worker.stop()
        failing = await page.wait_for(
            "stats", lambda s: s["targets"]["default"]["ok_rate"] == 0, timeout=10
        )
        target = failing["targets"]["default"]
        assert target["failed_rate"] > 0
        assert target["error"], "the page is not told why requests fail"
        await page.set_frequency(0)
    failed = own_stack.metric(FRONTEND_REQUESTS_METRIC, target="default", outcome="failed")
    assert failed > 0
    assert own_stack.frontend.alive()


async def test_a_hung_worker_never_piles_up_requests(own_stack: Stack) -> None:
    worker = own_stack.worker
    async with Page(own_stack.url) as page:
        await page.set_frequency(50)
        await page.wait_for("hashes")
        worker.signal(signal.SIGSTOP)  # accepts connections, answers nothing
        try:
            since = page.mark()
            await page.wait_for(
                "stats", lambda s: s["targets"]["default"]["skipped_rate"] > 0, timeout=10
            )
            await page.wait_for(
                "stats", lambda s: s["targets"]["default"]["failed"] > 0, timeout=10
            )
            stats = [e.data for e in page.events[since:] if e.name == "stats"]
            assert max(s["in_flight"] for s in stats) <= 8
            assert own_stack.metric("hashr_frontend_requests_in_flight") <= 8
            skipped = own_stack.metric(
                FRONTEND_REQUESTS_METRIC, target="default", outcome="skipped"
            )
            assert skipped > 0
        finally:
            worker.signal(signal.SIGCONT)
        # Once the worker answers again, so do the requests.
        recovered = page.mark()
        await page.wait_for("hashes", since=recovered, timeout=10)
        await page.set_frequency(0)
    assert own_stack.frontend.alive()
