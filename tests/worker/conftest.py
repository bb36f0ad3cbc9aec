from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from harness.channel import next_message
from harness.metrics import sample_sum
from harness.processes import ManagedProcess
from harness.redis_server import RedisServer
from harness.services import start_worker


@dataclass
class RunningWorker:
    proc: ManagedProcess
    url: str
    channel: str
    http: httpx.Client  # base_url=url; one client, since creating one costs ~50 ms

    def metric(self, name: str, **labels: str) -> float:
        """The current value of one sample on /metrics (0 when absent)."""
        return sample_sum(self.http.get("/metrics").text, name, **labels)

    def requests_with_status(self, status: int) -> float:
        return self.metric("hashr_worker_requests_total", status=str(status))

    def stop(self) -> int | None:
        self.http.close()
        return self.proc.stop()


def launch_worker(redis_server: RedisServer, log_dir: Path, **env: str) -> RunningWorker:
    """A worker publishing on a channel of its own, so tests never see each other's messages."""
    channel = env.pop("CHANNEL", f"calculation-{uuid.uuid4().hex[:8]}")
    proc, url = start_worker(redis_server, log_dir, CHANNEL=channel, **env)
    return RunningWorker(proc, url, channel, httpx.Client(base_url=url, timeout=10))


@pytest.fixture
def burst_worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    """A real worker process with PREFIX=bursty- on the session's Redis; yields its base URL."""
    proc, url = start_worker(redis_server, tmp_path, prefix="bursty-")
    yield url
    proc.stop()


@pytest.fixture(scope="module")
def shared_worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorker]:
    """One worker for a whole module of request/response tests (start-up costs ~1 s)."""
    worker = launch_worker(redis_server, tmp_path_factory.mktemp("worker"))
    yield worker
    worker.stop()


class Subscriber:
    """A real Redis subscriber on one channel."""

    def __init__(self, url: str, channel: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(channel)
        # Once Redis confirms, nothing published from here on can be missed.
        confirmation = self.pubsub.get_message(timeout=5.0)
        assert confirmation is not None and confirmation["type"] == "subscribe", confirmation

    def next(self, timeout: float = 5.0) -> bytes | None:
        return next_message(self.pubsub, timeout)

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def subscriber(redis_server: RedisServer, shared_worker: RunningWorker) -> Iterator[Subscriber]:
    sub = Subscriber(redis_server.url, shared_worker.channel)
    yield sub
    sub.close()
