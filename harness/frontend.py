"""The frontend as a real process, and a python-socketio client that stands in for its page.

`start_frontend(redis, tmp_path, processor_url=worker_url)` gives (process, base URL), and
`start_stack(redis, tmp_path)` a worker with a frontend driving it. Then
`async with Page(url) as page:` connects, `await page.set_frequency(20)` sets the rate and waits
for the confirmation, and `await page.wait_for("hashes")` returns the next batch of hashes
(`{"hashes": [{"value", "cluster", "worker", "published_at"}, ...], "count", "counts", ...}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import socketio

from harness.metrics import metric_value
from harness.processes import ManagedProcess
from harness.redis_server import RedisServer
from harness.services import start_service, start_worker


def start_frontend(
    redis: RedisServer, log_dir: Path, processor_url: str, **env: str
) -> tuple[ManagedProcess, str]:
    """`istio-burst frontend` answering GET /; returns the process and base URL.

    Keyword arguments are its environment variables (MAX_FREQUENCY="50", CHANNEL=...); without
    PORT it listens on a free port.
    """
    defaults = {"REDIS_URL": redis.host_port, "PROCESSOR_URL": processor_url}
    return start_service("frontend", log_dir, **{**defaults, **env})


@dataclass
class Stack:
    """A worker and a frontend driving it, publishing on a channel of their own."""

    redis: RedisServer
    worker: ManagedProcess
    frontend: ManagedProcess
    url: str
    channel: str

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the frontend's samples named `name` with these labels (0 if none yet)."""
        return metric_value(self.url, name, **labels)

    def stop(self) -> None:
        self.frontend.stop()
        self.worker.stop()


def new_channel() -> str:
    """A channel name no other test's workers publish on."""
    return f"calculation-{uuid.uuid4().hex[:8]}"


def start_stack(redis: RedisServer, log_dir: Path, **frontend_env: str) -> Stack:
    """One worker and `istio-burst frontend` sending to it (env: the frontend's settings)."""
    channel = new_channel()
    worker, worker_url = start_worker(redis, log_dir, CHANNEL=channel)
    try:
        frontend, url = start_frontend(redis, log_dir, worker_url, CHANNEL=channel, **frontend_env)
    except BaseException:
        worker.stop()
        raise
    return Stack(redis, worker, frontend, url, channel)


# Seconds between the `received` events a page sends (as the page's script, app.js).
ACK_EVERY = 0.2


@dataclass(frozen=True)
class Event:
    name: str
    data: Any
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival, to compare with a hash's published_at


class Page:
    """A socket.io client that records every server event, in order, with its arrival time."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        *,
        acknowledge: bool = True,
        transports: tuple[str, ...] = ("websocket",),
    ) -> None:
        self.url = url
        self.transports = list(transports)  # ("polling",): long-polling, as behind some proxies
        self.headers = headers or {}
        self.acknowledge = acknowledge
        self._handled = 0
        self._ack: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.events: list[Event] = []
        self._arrived = asyncio.Event()
        self.sio = socketio.AsyncClient(
            reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1.0
        )
        self.sio.on("*", self._record)

    async def _record(self, name: str, *args: Any) -> None:
        self.events.append(Event(name, args[0] if args else None, time.monotonic(), time.time()))
        self._arrived.set()
        if name == "hashes" and self.acknowledge:
            # As the page's script does: the server sends a page that does not say what it
            # has handled only the newest hashes, after a while none.
            self._handled = args[0]["seq"]
            if self._ack is None:
                self._ack = asyncio.get_running_loop().call_later(ACK_EVERY, self._send_ack)

    def _send_ack(self) -> None:
        self._ack = None
        task = asyncio.create_task(self._emit_ack(self._handled))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit_ack(self, seq: int) -> None:
        # A page whose server just went away reconnects; the next ack says the same.
        with contextlib.suppress(socketio.exceptions.SocketIOError):
            await self.sio.emit("received", {"seq": seq})

    async def connect(self) -> Page:
        await self.sio.connect(
            self.url, headers=self.headers, transports=self.transports, wait_timeout=10
        )
        return self

    async def close(self) -> None:
        if self._ack is not None:
            self._ack.cancel()
        await self.sio.disconnect()

    async def __aenter__(self) -> Page:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def mark(self) -> int:
        """A position in the event log: wait_for(..., since=mark) looks only at what came after."""
        return len(self.events)

    async def wait_for(
        self,
        name: str,
        where: Callable[[Any], bool] = lambda _: True,
        *,
        since: int = 0,
        timeout: float = 10.0,
    ) -> Any:
        """The data of the first `name` event at or after `since` for which `where` holds."""
        deadline = time.monotonic() + timeout
        index = since
        while True:
            while index < len(self.events):
                event = self.events[index]
                index += 1
                if event.name == name and where(event.data):
                    return event.data
            left = deadline - time.monotonic()
            if left <= 0:
                seen = sorted({e.name for e in self.events[since:]})
                raise TimeoutError(f"no {name!r} event in {timeout}s (saw: {seen})")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def emit(self, name: str, data: Any = None) -> None:
        """As python-socketio sends it: None sends no argument, a tuple one argument each."""
        await self.sio.emit(name, data)

    async def set_frequency(self, freq: float, timeout: float = 10.0) -> None:
        """Send `frequency` and wait until the server confirms that value."""
        since = self.mark()
        await self.emit("frequency", {"freq": freq})
        await self.wait_for("frequency", lambda d: d["freq"] == freq, since=since, timeout=timeout)

    def latest(self, name: str) -> Any:
        for event in reversed(self.events):
            if event.name == name:
                return event.data
        raise LookupError(f"no {name!r} event yet")

    def hashes(self, since: int = 0) -> list[dict[str, Any]]:
        """Every hash shown to this page after `since`, oldest first."""
        return [h for e in self.events[since:] if e.name == "hashes" for h in e.data["hashes"]]

    def hash_count(self, since: int = 0, until: int | None = None) -> int:
        """How many hashes the batches after `since` (and before `until`) stand for."""
        return sum(e.data["count"] for e in self.events[since:until] if e.name == "hashes")

    async def hash_rate(self, seconds: float) -> float:
        """Hashes per second arriving over the next `seconds` (the counts, not just the shown)."""
        start = self.mark()
        started = time.monotonic()
        await asyncio.sleep(seconds)
        return self.hash_count(since=start) / (time.monotonic() - started)
