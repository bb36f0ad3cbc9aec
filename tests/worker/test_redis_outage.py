"""Redis goes away and comes back: no hangs, readiness says why, recovery without a restart, and
every 200 was really published (a 503 was not)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from harness.redis_server import RedisServer
from tests.worker.conftest import RunningWorker, launch_worker

NO_HANG = 5.0  # seconds: far above PUBLISH_TIMEOUT, far below "hung"
RECOVERY = 2.0  # the bound for answering 200 again once Redis is back


@dataclass
class Answer:
    sent_at: float
    elapsed: float
    status: int
    body: bytes


@dataclass
class RequestStream:
    """A few clients POSTing back to back until stopped, every answer recorded."""

    url: str
    clients: int = 4
    answers: list[Answer] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=NO_HANG * 2) as http:
            await asyncio.gather(*(self._client(http, n) for n in range(self.clients)))

    async def _client(self, http: httpx.AsyncClient, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            started = time.monotonic()
            response = await http.post("/", json={"str": f"client {n} request {i}"})
            self.answers.append(
                Answer(started, time.monotonic() - started, response.status_code, response.content)
            )
            i += 1

    def stop(self) -> None:
        self._stop.set()

    def count(self, status: int, since: float = 0.0) -> int:
        return sum(1 for a in self.answers if a.status == status and a.sent_at >= since)

    async def wait_for(self, status: int, count: int, since: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count(status, since) < count:
            assert time.monotonic() < deadline, f"fewer than {count} answers {status} in {timeout}s"
            await asyncio.sleep(0.02)


async def collect_messages(url: str, channel: str, into: list[bytes], ready: asyncio.Event) -> None:
    """Subscribe and keep every message until the connection breaks (Redis stopped)."""
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(channel)
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            if message["type"] == "subscribe":
                ready.set()
            elif message["type"] == "message":
                into.append(message["data"])
    except (redis.ConnectionError, OSError):
        return  # Redis went away: everything it delivered is in `into`
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
            await client.aclose()


def publish_calls(server: RedisServer) -> int:
    with redis.Redis.from_url(server.url) as client:
        stats = client.info("commandstats")
    return int(stats.get("cmdstat_publish", {}).get("calls", 0))


def kill_redis(server: RedisServer) -> None:
    """SIGKILL: no shutdown, connections cut wherever they are."""
    with redis.Redis.from_url(server.url) as client:
        pid = int(client.info("server")["process_id"])
    os.kill(pid, signal.SIGKILL)
    server.stop()  # reaps it


@pytest.mark.parametrize("how", ["stopped", "killed"])
async def test_redis_goes_away_and_comes_back_during_a_stream_of_requests(
    how: str, own_redis: RedisServer, tmp_path: Path
) -> None:
    worker = launch_worker(own_redis, tmp_path, PUBLISH_TIMEOUT="1")
    received: list[bytes] = []
    subscribed = asyncio.Event()
    subscriber = asyncio.create_task(
        collect_messages(own_redis.url, worker.channel, received, subscribed)
    )
    await asyncio.wait_for(subscribed.wait(), NO_HANG)
    stream = RequestStream(worker.url)
    sending = asyncio.create_task(stream.run())
    try:
        await stream.wait_for(200, 40, since=0, timeout=10)

        # Redis goes away while requests are in flight.
        await asyncio.to_thread(
            own_redis.stop if how == "stopped" else partial(kill_redis, own_redis)
        )
        went_down = time.monotonic()
        await asyncio.wait_for(subscriber, NO_HANG)  # it saw the connection close
        await stream.wait_for(503, 20, since=went_down, timeout=10)
        async with httpx.AsyncClient(base_url=worker.url, timeout=NO_HANG) as http:
            health = await http.get("/_healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert "redis unavailable" in health.json()["reason"]
        assert stream.count(200, since=went_down) == 0, "a 200 with Redis down"

        # Redis comes back on the same port; the worker was not restarted.
        await asyncio.to_thread(own_redis.start)
        came_back = time.monotonic()
        await stream.wait_for(200, 1, since=came_back, timeout=RECOVERY)
        await stream.wait_for(200, 40, since=came_back, timeout=10)
        assert worker.http.get("/_healthz").status_code == 200
    finally:
        stream.stop()
        await sending
        subscriber.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await subscriber
        alive = worker.proc.alive()
        worker.stop()
    assert alive, "the worker died"

    statuses = {a.status for a in stream.answers}
    assert statuses == {200, 503}, statuses
    slowest = max(a.elapsed for a in stream.answers)
    assert slowest < NO_HANG, f"a request took {slowest:.1f}s"
    assert all(b"redis" in a.body for a in stream.answers if a.status == 503)

    # Every 200 was published, nothing else: the first Redis delivered exactly the 200s it
    # confirmed to our subscriber, and the second one counted the rest.
    answered = [a.body for a in stream.answers if a.status == 200]
    assert set(received) <= set(answered), "a message was published that was not answered 200"
    assert len(received) + publish_calls(own_redis) == len(answered)


async def test_a_redis_that_does_not_answer_gets_503_in_bounded_time(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    worker = launch_worker(own_redis, tmp_path, PUBLISH_TIMEOUT="0.5")
    admin = redis.Redis.from_url(own_redis.url)
    try:
        # Redis stops answering for 1.5 s (CLIENT UNPAUSE would itself wait out the pause).
        admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")
        paused_at = time.monotonic()
        async with httpx.AsyncClient(base_url=worker.url, timeout=NO_HANG * 2) as http:
            started = time.monotonic()
            answers = await asyncio.gather(
                *(http.post("/", json={"str": f"paused {i}"}) for i in range(20)),
                http.get("/_healthz"),
            )
            elapsed = time.monotonic() - started
            *posts, health = answers
            assert elapsed < NO_HANG
            assert {r.status_code for r in posts} == {503}
            assert posts[0].json() == {
                "error": "unavailable",
                "detail": "redis did not answer within 0.5s",
            }
            assert health.status_code == 503
            assert "TimeoutError" in health.json()["reason"]
            assert worker.requests_with_status(503) == 21  # 20 POSTs and the readiness check

            deadline = paused_at + 1.5 + RECOVERY
            while (response := await http.post("/", json={"str": "resumed"})).status_code != 200:
                assert time.monotonic() < deadline, response.text
                await asyncio.sleep(0.02)
        # The 503s were never executed, even once Redis resumed: only the 200 was published.
        assert publish_calls(own_redis) == 1
        assert worker.proc.alive()
    finally:
        admin.close()
        worker.stop()


def test_a_worker_started_before_redis_answers_once_redis_is_up(tmp_path: Path) -> None:
    down = RedisServer(tmp_path)  # a free port with nothing on it yet
    worker: RunningWorker = launch_worker(down, tmp_path)
    try:
        response = worker.http.post("/", json={"str": "too early"})
        assert response.status_code == 503
        assert "redis unavailable" in response.json()["detail"]
        assert worker.http.get("/_healthz").status_code == 503
        assert worker.metric("hashr_worker_redis_up") == 0
        down.start()
        deadline = time.monotonic() + RECOVERY
        while worker.http.post("/", json={"str": "now"}).status_code != 200:
            assert time.monotonic() < deadline, "no 200 within 2 s of Redis starting"
        assert worker.http.get("/_healthz").status_code == 200
        assert worker.metric("hashr_worker_redis_up") == 1
    finally:
        worker.stop()
        down.stop()
