"""What the soak sees while it runs: its own pages, a tap on the hash channel, the watcher, the
proxy's weights, and every process's RSS, CPU and open files.

Everything is recorded with wall-clock times (time.time(), as the hashes' `published_at`) in a
`Record` that the analysis reads when the run is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import socketio

from harness.frontend import Page
from harness.metrics import sample_sum
from harness.procfs import open_fds, sample
from istio_burst.core.contracts import CALCULATION_CHANNEL, PROXY_BACKEND, SUBSETS, HashMessage
from istio_burst.core.redis import subscribe_forever
from istio_burst.demo.haproxy import runtime_command
from soak.system import System


@dataclass
class Record:
    """Everything observed, appended to as the run goes."""

    started: float = field(default_factory=time.time)
    asked: list[tuple[float, float]] = field(default_factory=list)  # (t, rate accepted)
    tapped: dict[str, float] = field(default_factory=dict)  # hash value -> published_at
    stats: list[tuple[float, float, float]] = field(default_factory=list)  # (t, F, achieved)
    status: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # watcher /status
    ready: list[tuple[float, bool]] = field(default_factory=list)  # watcher /healthz == 200
    unready: list[tuple[float, str]] = field(default_factory=list)  # why it was not, when not
    proxy_weights: list[tuple[float, int | None]] = field(default_factory=list)  # burst weight
    procs: list[tuple[float, str, int, float, float, int]] = field(default_factory=list)
    published: dict[str, float] = field(default_factory=dict)  # worker -> 200s counted so far
    slider_errors: int = 0
    page_connect_failures: int = 0


async def tap_hashes(redis_url: str, record: Record, subscribed: asyncio.Event) -> None:
    """The soak's own subscriber on the hash channel: every hash Redis delivered, which is what
    the workers published (a worker answers 200 only after Redis confirmed it). `subscribed` is
    set once it listens."""

    def on_message(_channel: str, data: bytes) -> None:
        message = HashMessage.decode(data)
        record.tapped[message.value] = message.published_at

    def on_state(up: bool, _reason: str | None) -> None:
        if up:
            subscribed.set()

    await subscribe_forever(redis_url, [CALCULATION_CHANNEL], on_message, on_state)


class Pages:
    """The observer (one page on the first frontend that stays connected all along), the pages
    that move the slider, and pages that come and go, some on long-polling."""

    def __init__(self, system: System, record: Record, churn: int) -> None:
        self.urls = system.ports.frontends
        self.record = record
        self.churn_target = churn
        self.observer = Page(self.urls[0])
        self.sliders = [
            Page(url, transports=transports, acknowledge=True)
            for url, transports in zip(
                [self.urls[i % len(self.urls)] for i in range(3)],
                [("websocket",), ("polling",), ("websocket",)],
                strict=True,
            )
        ]
        self.churning: list[tuple[Page, float]] = []  # (page, leave at)
        self._leaving: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.observer.connect()
        for page in self.sliders:
            await page.connect()
        self.observer.sio.on("stats", self._on_stats)

    async def _on_stats(self, data: dict[str, Any]) -> None:
        self.record.stats.append((time.time(), float(data["frequency"]), float(data["achieved"])))

    async def set_rate(self, rate: float) -> None:
        """Move the slider from one of several pages; retried until a frontend accepts it (while
        Redis is away the change is refused with `not_shared`)."""
        while True:
            page = random.choice(self.sliders)
            try:
                await page.set_frequency(rate, timeout=5)
            except (TimeoutError, socketio.exceptions.SocketIOError):
                self.record.slider_errors += 1
                await asyncio.sleep(0.5)
                continue
            self.record.asked.append((time.time(), rate))
            return

    async def churn(self) -> None:
        """Keep about `churn_target` pages open, each for 10-60 s; a third on long-polling."""
        while True:
            now = time.monotonic()
            for page, leave_at in list(self.churning):
                if leave_at <= now:
                    self.churning.remove((page, leave_at))
                    self._leave(page)
            if len(self.churning) < self.churn_target:
                transports = ("polling",) if random.random() < 1 / 3 else ("websocket",)
                page = Page(random.choice(self.urls), transports=transports)
                try:
                    await page.connect()
                except Exception:  # a frontend being killed: the next one tries elsewhere
                    self.record.page_connect_failures += 1
                    self._leave(page)
                else:
                    self.churning.append((page, now + random.uniform(10, 60)))
            await asyncio.sleep(0.3)

    def _leave(self, page: Page) -> None:
        """Close it in the background: a long-polling client waits for its pending poll."""
        task = asyncio.create_task(_close(page))
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def close(self, timeout: float = 10) -> None:
        pages = [self.observer, *self.sliders, *(p for p, _ in self.churning)]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(_close(p) for p in pages), *self._leaving)


async def _close(page: Page) -> None:
    with contextlib.suppress(Exception):
        await page.close()


async def poll_watcher(system: System, record: Record, every: float = 0.5) -> None:
    async with httpx.AsyncClient(base_url=system.ports.watcher, timeout=2) as client:
        while True:
            now = time.time()
            try:
                healthz = await client.get("/healthz")
                record.ready.append((now, healthz.status_code == 200))
                if healthz.status_code != 200:
                    record.unready.append((now, _reason(healthz)))
                status = await client.get("/status")
                record.status.append((now, status.json()))
            except (httpx.HTTPError, ValueError) as failed:
                record.ready.append((now, False))
                record.unready.append((now, f"no answer: {failed!r}"))
            await asyncio.sleep(every)


def _reason(healthz: httpx.Response) -> str:
    try:
        return str(healthz.json().get("reason", healthz.text))
    except ValueError:
        return f"{healthz.status_code} {healthz.text[:200]}"


async def poll_proxy(system: System, record: Record, every: float = 1.0) -> None:
    while True:
        now = time.time()
        try:
            answer = await asyncio.to_thread(
                runtime_command,
                system.ports.runtime_api,
                f"get weight {PROXY_BACKEND}/{SUBSETS[1]}",
                2,
            )
            record.proxy_weights.append((now, int(answer.split()[0])))
        except (OSError, TimeoutError, ValueError, IndexError):
            record.proxy_weights.append((now, None))
        await asyncio.sleep(every)


async def sample_processes(system: System, record: Record, every: float) -> None:
    """RSS, CPU seconds and open fds of every live component, and the hashes the workers had
    Redis confirm (a worker SIGKILLed loses its last few seconds of count), every `every` s."""
    counted: dict[str, float] = {}  # the counter's last value, per incarnation
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            now = time.time()
            for name, pid in system.pids().items():
                with contextlib.suppress(OSError, ValueError, KeyError):
                    proc = sample(pid)
                    record.procs.append(
                        (now, name, pid, proc.rss_mb, proc.cpu_seconds, open_fds(pid))
                    )
            for name, url in (
                ("worker-primary", system.ports.primary),
                ("worker-burst", system.ports.burst),
            ):
                try:
                    text = (await client.get(url + "/metrics")).text
                except httpx.HTTPError:
                    continue
                # Every publish the worker tried, less those that failed (answered 503).
                value = sample_sum(text, "hashr_worker_publish_seconds_count") - sample_sum(
                    text, "hashr_worker_publish_errors_total"
                )
                last = counted.get(name, 0.0)
                # A restarted worker counts from 0 again.
                record.published[name] = record.published.get(name, 0.0) + (
                    value - last if value >= last else value
                )
                counted[name] = value
            await asyncio.sleep(every)
