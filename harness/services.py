"""Starting the project's own services as real processes (`istio-burst <service>`)."""

from __future__ import annotations

from pathlib import Path

from harness.ports import free_port
from harness.processes import ISTIO_BURST, ManagedProcess
from harness.redis_server import RedisServer


def start_service(
    service: str, log_dir: Path, ready_path: str = "/", **env: str
) -> tuple[ManagedProcess, str]:
    """`istio-burst <service>` with these environment variables, ready when `ready_path` answers
    200; on a free port unless PORT is given. Returns the process and its base URL."""
    port = int(env.pop("PORT", 0)) or free_port()
    proc = ManagedProcess(
        f"{service}-{port}",
        [ISTIO_BURST, service],
        log_dir,
        env={"PORT": str(port), "HOST": "127.0.0.1", "LOG_FORMAT": "text", **env},
    ).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_http_ok(url + ready_path)
    return proc, url


def start_worker(
    redis: RedisServer, log_dir: Path, prefix: str = "", **env: str
) -> tuple[ManagedProcess, str]:
    """A worker on a free port, ready (GET / answers); returns the process and its base URL."""
    return start_service(
        "worker", log_dir, **{"REDIS_URL": redis.host_port, "PREFIX": prefix, **env}
    )
