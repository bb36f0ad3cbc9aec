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

from istio_burst.core.contracts import ROUTING_KEY, Weights
from tests.support.frontend import Stack, new_channel, start_frontend, start_stack
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.support.redis_server import RedisServer
from tests.support.services import start_worker


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One worker and one frontend (MAX_FREQUENCY 100) shared by a module's tests."""
    running = start_stack(redis_server, tmp_path_factory.mktemp("frontend"))
    yield running
    running.stop()


@dataclass
class SplitStack:
    url: str
    client: redis.Redis
    processes: list[ManagedProcess]
    # Starts the frontend again, same port and settings (after the test stopped it).
    restart_frontend: Callable[[], ManagedProcess]


@pytest.fixture
def split_stack(own_redis: RedisServer, tmp_path: Path) -> Iterator[SplitStack]:
    """Weights 0/100 already in Redis, then a primary worker, a bursty- one and the frontend
    (PROCESSOR_URL=primary=…,burst=…) on a Redis of the test's own."""
    client = redis.Redis.from_url(own_redis.url)
    client.set(ROUTING_KEY, Weights(0, 100).encode())
    channel = new_channel()
    processes: list[ManagedProcess] = []
    port = free_port()
    try:
        primary, primary_url = start_worker(own_redis, tmp_path, CHANNEL=channel)
        processes.append(primary)
        burst, burst_url = start_worker(own_redis, tmp_path, prefix="bursty-", CHANNEL=channel)
        processes.append(burst)

        def launch() -> ManagedProcess:
            frontend, _ = start_frontend(
                own_redis,
                tmp_path,
                f"primary={primary_url},burst={burst_url}",
                PORT=str(port),
                CHANNEL=channel,
            )
            processes.append(frontend)
            return frontend

        launch()
        yield SplitStack(f"http://127.0.0.1:{port}", client, processes, launch)
    finally:
        for proc in reversed(processes):
            proc.stop()
        client.close()
