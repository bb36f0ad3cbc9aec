"""Starting the project's own services as real processes (`istio-burst <service>`)."""

from __future__ import annotations

from pathlib import Path

from tests.support.ports import free_port
from tests.support.processes import ISTIO_BURST, ManagedProcess
from tests.support.redis_server import RedisServer


def start_worker(
    redis: RedisServer, log_dir: Path, prefix: str = "", **env: str
) -> tuple[ManagedProcess, str]:
    """A worker on a free port, ready (GET / answers); returns the process and its base URL."""
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
            "LOG_FORMAT": "text",
            **env,
        },
    ).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_http_ok(url + "/")
    return proc, url
