"""What the frontend benchmarks share: a throwaway Redis + worker (+ HAProxy) + frontend, and
/proc figures."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.frontend import Stack, new_channel, start_frontend
from harness.haproxy import HAProxyServer
from harness.redis_server import RedisServer
from harness.services import start_worker


def through_proxy() -> bool:
    """BENCH_THROUGH_PROXY (default 1): the frontend sends through HAProxy, as in the demo."""
    return os.environ.get("BENCH_THROUGH_PROXY", "1") not in ("0", "false", "no")


def hop_label() -> str:
    return " via haproxy" if through_proxy() else ""


@contextmanager
def frontend_stack(**frontend_env: str) -> Iterator[Stack]:
    """Redis, one worker and `istio-burst frontend` on free ports; all stopped afterwards.

    With BENCH_THROUGH_PROXY (the default) the frontend's PROCESSOR_URL is a real HAProxy with the
    demo's config in front of the worker (both servers on it, weights 100/0): the demo's hop.
    """
    with tempfile.TemporaryDirectory(prefix="bench-frontend-") as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir).start()
        proxy: HAProxyServer | None = None
        try:
            channel = new_channel()
            worker, worker_url = start_worker(redis, workdir, CHANNEL=channel)
            try:
                target = worker_url
                if through_proxy():
                    (workdir / "haproxy").mkdir()
                    address = worker_url.removeprefix("http://")
                    proxy = HAProxyServer(workdir / "haproxy", address, address).start()
                    target = proxy.url
                frontend, url = start_frontend(
                    redis, workdir, target, CHANNEL=channel, LOG_LEVEL="WARNING", **frontend_env
                )
            except BaseException:
                worker.stop()
                if proxy is not None:
                    proxy.stop()
                raise
            stack = Stack(redis, worker, frontend, url, channel)
            try:
                yield stack
            finally:
                stack.stop()
                if proxy is not None:
                    proxy.stop()
        finally:
            redis.stop()


def seconds_from_env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))
