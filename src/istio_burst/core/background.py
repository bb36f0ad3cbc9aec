"""A service's background tasks: started by name, stopped together.

The one way the services run work beside their requests. A component starts its loops here in
`start()` and ends them with `await stop()`; a task that fails is logged when it fails, not
found out at shutdown (or never, when nothing awaits it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name)
        # Held here until done: the event loop keeps only a weak reference to a task.
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("background task %s failed", task.get_name(), exc_info=error)

    async def stop(self, grace: float = 0.0) -> None:
        """Give the tasks up to `grace` seconds to finish by themselves, then cancel the rest
        and wait until they have ended."""
        tasks = set(self._tasks)
        if tasks and grace > 0:
            _, tasks = await asyncio.wait(tasks, timeout=grace)
            if tasks:  # one line, however many: a driver may hold hundreds of requests
                names = sorted({task.get_name() for task in tasks})
                log.warning(
                    "%d task(s) still running after %gs, cancelled: %s",
                    len(tasks),
                    grace,
                    ", ".join(names[:5]) + (", ..." if len(names) > 5 else ""),
                )
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
