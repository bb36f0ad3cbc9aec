"""Delivering items in the background: a bounded queue, retries, a deadline per item.

Putting never waits (a full queue drops the item, counted), so a slow or dead receiver never
slows a decision; one worker task sends the items in order, each within `deadline` seconds
with its retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from istio_burst.core.background import BackgroundTasks

T = TypeVar("T")

log = logging.getLogger(__name__)


class BackgroundSender(Generic[T]):
    def __init__(
        self,
        name: str,
        send: Callable[[T], Awaitable[None]],
        count: Callable[[str], None],
        *,
        queue_size: int,
        deadline: float,
        attempts: int = 3,
        first_retry: float = 0.2,
        describe: Callable[[BaseException], str] = str,
    ) -> None:
        """`count(outcome)` with outcome "sent", "failed" or "dropped"; `describe` an error for
        the log (it must not show secrets)."""
        self.name = name
        self._send = send
        self._count = count
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize=queue_size)
        self._deadline = deadline
        self._attempts = attempts
        self._first_retry = first_retry
        self._describe = describe
        self._tasks = BackgroundTasks()  # the one sending task, started by the first put
        self._failing = False

    def put(self, item: T) -> None:
        if not self._tasks:
            self._tasks.start(self._run(), self.name)
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._count("dropped")

    async def close(self, timeout: float = 2.0) -> None:
        """Send what is queued for up to `timeout` seconds, then stop."""
        if not self._tasks:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)
        await self._tasks.stop()

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._deliver(item)
            finally:
                self._queue.task_done()

    async def _deliver(self, item: T) -> None:
        error: BaseException | None = None
        try:
            async with asyncio.timeout(self._deadline):
                for attempt in range(self._attempts):
                    try:
                        await self._send(item)
                    except Exception as exc:
                        error = exc
                        if attempt + 1 < self._attempts:
                            await asyncio.sleep(self._first_retry * 2**attempt)
                        continue
                    self._count("sent")
                    if self._failing:
                        log.info("%s: delivering again", self.name)
                    self._failing = False
                    return
        except TimeoutError as exc:
            error = error or exc
        self._count("failed")
        if not self._failing:  # one line per run of failures
            why = self._describe(error) if error is not None else "no reason"
            log.warning("%s: could not deliver: %s", self.name, why or type(error).__name__)
        self._failing = True
