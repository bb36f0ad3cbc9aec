"""The fault schedule and what each fault does to the running system.

Each fault records when it began and when its action ended (the component started again, the
reload issued): recovery is measured from the end. A fault that breaks the path of the hashes
states an outage window (from its start to `OUTAGE_GRACE` s after its end); hashes lost inside
are reported apart, and any lost outside every window count as lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from soak.system import System

# Longer than the watcher's staleness limit (MAX_FAILURES readings a second apart) many times
# over: the watcher must report not-ready, hold the weights, and recover when Prometheus returns.
PROMETHEUS_OUTAGE = 15.0
# The stated outage window runs this long past a fault's end: the recovery the soak allows.
OUTAGE_GRACE = 10.0


@dataclass
class Fault:
    kind: str
    target: str
    breaks_hashes: bool  # whether hashes may be lost while it lasts (an outage window)
    started: float = 0.0  # time.time()
    ended: float = 0.0

    @property
    def window(self) -> tuple[float, float] | None:
        """The stated outage window (wall-clock seconds), if this fault has one."""
        return (self.started, self.ended + OUTAGE_GRACE) if self.breaks_hashes else None


def schedule(frontends: int, cycle: int) -> list[Fault]:
    """The faults of one round; the first round also has the SIGKILLs done once per run."""
    faults = [
        Fault("redis restart", "redis", breaks_hashes=True),
        Fault("prometheus stop", "prometheus", breaks_hashes=False),
        Fault("haproxy reload", "haproxy", breaks_hashes=False),
        Fault("worker SIGKILL", "worker-primary", breaks_hashes=True),
        Fault("watcher restart", "watcher", breaks_hashes=False),
    ]
    if frontends >= 2:
        faults.append(Fault("frontend SIGKILL", "frontend-2", breaks_hashes=True))
    if cycle == 0:
        faults += [
            Fault("redis SIGKILL", "redis", breaks_hashes=True),
            Fault("haproxy SIGKILL", "haproxy", breaks_hashes=True),
        ]
    return faults


async def inject(system: System, fault: Fault) -> None:
    """Do the fault; returns once its action is over (the component is starting again)."""
    fault.started = time.time()
    await ACTIONS[fault.kind](system, fault.target)
    fault.ended = time.time()


async def _restart(system: System, name: str) -> None:
    await asyncio.to_thread(system.process(name).stop)
    system.start_again(name)


async def _kill_and_start(system: System, name: str) -> None:
    system.kill(name)
    await asyncio.to_thread(system.process(name).wait_exit)
    system.start_again(name)


async def _stop_for_a_while(system: System, name: str) -> None:
    await asyncio.to_thread(system.process(name).stop)
    await asyncio.sleep(PROMETHEUS_OUTAGE)
    system.start_again(name)


async def _reload(system: System, _name: str) -> None:
    old = system.reload_haproxy()
    await asyncio.to_thread(old.wait_exit, 30)


ACTIONS: dict[str, Callable[[System, str], Awaitable[None]]] = {
    "redis restart": _restart,
    "redis SIGKILL": _kill_and_start,
    "prometheus stop": _stop_for_a_while,
    "haproxy reload": _reload,
    "haproxy SIGKILL": _kill_and_start,
    "worker SIGKILL": _kill_and_start,
    "watcher restart": _restart,
    "frontend SIGKILL": _kill_and_start,
}
