"""SIGTERM: stop accepting, finish the requests in flight (they get their answers), exit 0."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import redis

from harness.ports import wait_port_closed
from harness.redis_server import RedisServer
from tests.worker.conftest import RunningWorker, Subscriber, launch_worker

IN_FLIGHT = 10
PAUSE_MS = 3000  # how long Redis holds the publishes: the requests are in flight meanwhile


async def wait_until(check: object, what: str, timeout: float = 5.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        await asyncio.sleep(0.02)


async def test_sigterm_finishes_requests_in_flight_then_exits_0(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    worker: RunningWorker = launch_worker(own_redis, tmp_path, PUBLISH_TIMEOUT="6")
    port = urlsplit(worker.url).port
    assert port is not None
    subscriber = Subscriber(own_redis.url, worker.channel)
    admin = redis.Redis.from_url(own_redis.url)
    try:
        # PUBLISH waits while Redis is paused for writes; PING (readiness) still answers.
        admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
        async with httpx.AsyncClient(base_url=worker.url, timeout=15) as http:
            requests = [
                asyncio.create_task(http.post("/", json={"str": f"in flight {i}"}))
                for i in range(IN_FLIGHT)
            ]
            await wait_until(
                lambda: worker.metric("hashr_worker_publish_in_flight") == IN_FLIGHT,
                f"{IN_FLIGHT} requests waiting on Redis",
            )

            worker.proc.signal(signal.SIGTERM)
            await wait_until(lambda: wait_port_closed(port), "the port closing")
            assert not any(r.done() for r in requests), "answered before Redis resumed?"
            assert worker.proc.alive(), "exited with requests in flight"

            answers = await asyncio.gather(*requests)
        assert [a.status_code for a in answers] == [200] * IN_FLIGHT
        assert worker.proc.wait_exit(timeout=15) == 0

        published = {subscriber.next() for _ in range(IN_FLIGHT)}
        assert published == {a.content for a in answers}, "a 200 that was not published"
        assert len(published) == IN_FLIGHT
    finally:
        admin.close()
        subscriber.close()
        worker.stop()


def test_sigterm_when_idle_exits_0_quickly(redis_server: RedisServer, tmp_path: Path) -> None:
    worker = launch_worker(redis_server, tmp_path)
    try:
        assert worker.http.post("/", json={"str": "abc"}).status_code == 200
        worker.proc.signal(signal.SIGTERM)
        assert worker.proc.wait_exit(timeout=10) == 0
    finally:
        worker.stop()
