"""Running the watcher's rounds in-process, on a clock the test moves."""

from __future__ import annotations

from istio_burst.watcher.loop import Watcher
from tests.watcher.fake_http import Answer, ScriptedServer, vector


class Clock:
    """Each round is far enough from the last that no back-off holds it (unless a test says)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def load(prom: ScriptedServer, rate: float) -> None:
    prom.answer = Answer(200, vector(str(rate)))


async def next_round(watcher: Watcher, seconds: float = 100.0) -> None:
    assert isinstance(watcher.clock, Clock)
    watcher.clock.now += seconds
    await watcher.round()
