"""Several `istio-burst frontend` replicas on one Redis behind one real worker, a round-robin
TCP proxy standing in for the Kubernetes Service, and the worker's own count of requests.

Blocking starts and metric reads run in threads, so the pages and the proxy (on the test's
event loop) keep running meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.frontend import new_channel
from harness.metrics import metric_value
from harness.ports import free_port
from harness.processes import ISTIO_BURST, ManagedProcess
from harness.redis_server import RedisServer
from harness.services import start_worker

WORKER_REQUESTS = "hashr_worker_requests_total"


@dataclass
class Replica:
    name: str
    port: int
    proc: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Deployment:
    redis: RedisServer
    log_dir: Path
    worker: ManagedProcess
    worker_url: str
    channel: str = field(default_factory=new_channel)
    replicas: dict[str, Replica] = field(default_factory=dict)

    @classmethod
    def start(cls, redis: RedisServer, log_dir: Path) -> Deployment:
        channel = new_channel()
        worker, url = start_worker(redis, log_dir, CHANNEL=channel)
        return cls(redis, log_dir, worker, url, channel)

    def _launch(self, name: str, port: int | None = None) -> Replica:
        port = port or free_port()
        env = {
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "LOG_FORMAT": "text",
            "REDIS_URL": self.redis.host_port,
            "PROCESSOR_URL": self.worker_url,
            "CHANNEL": self.channel,
            "MAX_FREQUENCY": "1000",
        }
        argv = [ISTIO_BURST, "frontend"]
        proc = ManagedProcess(f"frontend-{name}-{port}", argv, self.log_dir, env=env).start()
        replica = self.replicas[name] = Replica(name, port, proc)
        return replica

    async def add(self, *names: str, ports: dict[str, int] | None = None) -> list[Replica]:
        """Start replicas at once and wait until each is ready (has the shared frequency)."""
        started = [self._launch(name, (ports or {}).get(name)) for name in names]
        await asyncio.gather(
            *(asyncio.to_thread(r.proc.wait_http_ok, r.url + "/_healthz", 30) for r in started)
        )
        return started

    def kill(self, name: str, sig: int) -> Replica:
        """Send `sig` and wait until the replica has exited."""
        replica = self.replicas.pop(name)
        replica.proc.signal(sig)
        replica.proc.wait_exit(15)
        replica.proc.stop()
        return replica

    async def worker_total(self) -> float:
        """Requests the worker answered so far, any status (503 while Redis is away)."""
        return await asyncio.to_thread(metric_value, self.worker_url, WORKER_REQUESTS)

    async def total_rate(self, seconds: float) -> float:
        """Requests per second the worker answered over the next `seconds`, all replicas."""
        before, started = await self.worker_total(), time.monotonic()
        await asyncio.sleep(seconds)
        after, ended = await self.worker_total(), time.monotonic()
        return (after - before) / (ended - started)

    def stop(self) -> None:
        for replica in self.replicas.values():
            replica.proc.stop()
        self.replicas.clear()
        self.worker.stop()


class RoundRobinProxy:
    """A plain TCP round-robin balancer (a Service without session affinity): each new
    connection goes to the next backend that accepts it."""

    def __init__(self) -> None:
        self.backends: list[int] = []
        self.connections: list[int] = []  # the backend port of each connection, in order
        self._turn = itertools.count()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> RoundRobinProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backends = list(self.backends)
        start = next(self._turn)
        for i in range(len(backends)):
            port = backends[(start + i) % len(backends)]
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue  # a dead endpoint: the next one
            self.connections.append(port)
            pipes = [
                asyncio.create_task(_pipe(reader, up_writer)),
                asyncio.create_task(_pipe(up_reader, writer)),
            ]
            self._pipes.update(pipes)
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            for task in pipes:
                task.cancel()
                self._pipes.discard(task)
            up_writer.close()
            break
        writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
