"""Real processes for the frontend's tests: a worker and `istio-burst frontend` on real Redis.

Each group of processes publishes on its own channel, so hashes from other tests' workers on the
shared Redis never reach these pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from harness.frontend import Stack, new_channel, start_frontend, start_stack
from harness.ports import free_port
from harness.processes import ManagedProcess
from harness.redis_server import RedisServer
from harness.services import start_worker


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One worker and one frontend (MAX_FREQUENCY 100) shared by a module's tests."""
    running = start_stack(redis_server, tmp_path_factory.mktemp("frontend"))
    yield running
    running.stop()


@dataclass
class PageStack:
    """A worker and a frontend on a Redis of the test's own, which the test may write to."""

    url: str
    channel: str
    redis_url: str
    client: redis.Redis
    processes: list[ManagedProcess]
    # Starts the frontend again, same port and settings (after the test stopped it).
    restart_frontend: Callable[[], ManagedProcess]


@pytest.fixture
def page_stack(own_redis: RedisServer, tmp_path: Path) -> Iterator[PageStack]:
    """A primary worker and the frontend (one PROCESSOR_URL) on a Redis of the test's own."""
    client = redis.Redis.from_url(own_redis.url)
    channel = new_channel()
    processes: list[ManagedProcess] = []
    port = free_port()
    try:
        worker, worker_url = start_worker(own_redis, tmp_path, CHANNEL=channel)
        processes.append(worker)

        def launch() -> ManagedProcess:
            frontend, _ = start_frontend(
                own_redis, tmp_path, worker_url, PORT=str(port), CHANNEL=channel
            )
            processes.append(frontend)
            return frontend

        launch()
        yield PageStack(
            f"http://127.0.0.1:{port}", channel, own_redis.url, client, processes, launch
        )
    finally:
        for proc in reversed(processes):
            proc.stop()
        client.close()
