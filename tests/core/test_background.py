"""The services' one way to run background tasks: a failure is logged when it happens, and
stopping waits for the grace period, then cancels what is left with one line in the log."""

from __future__ import annotations

import asyncio
import logging

import pytest

from istio_burst.core.background import BackgroundTasks


async def test_a_failing_task_is_logged_when_it_fails(caplog: pytest.LogCaptureFixture) -> None:
    tasks = BackgroundTasks()
    fine = tasks.start(asyncio.sleep(0), "fine")
    broken = tasks.start(_raise(ValueError("bad value")), "broken")
    await asyncio.wait([fine, broken])
    await asyncio.sleep(0)  # the done callbacks run on the next turn of the loop
    assert len(tasks) == 0
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "background task broken failed"
    assert record.exc_info is not None and "bad value" in str(record.exc_info[1])


async def test_stop_lets_tasks_finish_within_the_grace_then_cancels_the_rest_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()
    quick = tasks.start(asyncio.sleep(0.01), "quick")
    stuck = [tasks.start(asyncio.sleep(3600), f"stuck-{i}") for i in range(7)]
    await tasks.stop(grace=0.2)
    assert quick.done() and not quick.cancelled()
    assert all(task.cancelled() for task in stuck)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == (
        "7 task(s) still running after 0.2s, cancelled: stuck-0, stuck-1, stuck-2, stuck-3, "
        "stuck-4, ..."
    )


async def _raise(error: Exception) -> None:
    raise error
