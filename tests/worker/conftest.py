from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.processes import ISTIO_BURST, ManagedProcess
from tests.support.redis_server import RedisServer


def start_worker(
    redis: RedisServer, log_dir: Path, prefix: str = "", **env: str
) -> tuple[ManagedProcess, str]:
    port = free_port()
    proc = ManagedProcess(
        f"worker-{port}",
        [ISTIO_BURST, "worker"],
        log_dir,
        env={
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "REDIS_URL": redis.host_port,
            "PREFIX": prefix,
            **env,
        },
    ).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_http_ok(url + "/")
    return proc, url


@pytest.fixture
def burst_worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    """A real worker process with PREFIX=bursty- on the session's Redis; yields its base URL."""
    proc, url = start_worker(redis_server, tmp_path, prefix="bursty-")
    yield url
    proc.stop()
