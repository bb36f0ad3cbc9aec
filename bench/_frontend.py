"""What the frontend benchmarks share: a throwaway Redis + worker + frontend, and /proc figures."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.frontend import Stack, start_stack
from tests.support.redis_server import RedisServer


@contextmanager
def frontend_stack(**frontend_env: str) -> Iterator[Stack]:
    """Redis, one worker and `istio-burst frontend` on free ports; all stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-frontend-") as tmp:
        redis = RedisServer(Path(tmp)).start()
        try:
            stack = start_stack(redis, Path(tmp), LOG_LEVEL="WARNING", **frontend_env)
            try:
                yield stack
            finally:
                stack.stop()
        finally:
            redis.stop()


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float  # user + system time so far
    rss_mb: float
    peak_rss_mb: float


def sample(pid: int) -> ProcSample:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )

    def mb(key: str) -> float:
        return int(status[key].split()[0]) / 1024

    return ProcSample(ticks / os.sysconf("SC_CLK_TCK"), mb("VmRSS"), mb("VmHWM"))


def seconds_from_env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))
