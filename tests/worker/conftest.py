from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer
from tests.support.services import start_worker


@pytest.fixture
def burst_worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    """A real worker process with PREFIX=bursty- on the session's Redis; yields its base URL."""
    proc, url = start_worker(redis_server, tmp_path, prefix="bursty-")
    yield url
    proc.stop()
