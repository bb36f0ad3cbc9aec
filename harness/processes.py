"""The tests' side of the process runner (`istio_burst.demo.processes`, shared with the demo and
the benchmarks): where the `istio-burst` command is, a clear stop when a program is missing, and
the supervision of the local clusters that `python -m harness.kube`/`harness.istio` run."""

from __future__ import annotations

import shutil
import signal
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from types import FrameType

from istio_burst.demo.processes import ManagedProcess

__all__ = ["ISTIO_BURST", "ManagedProcess", "require_binary", "stop_on_signals", "supervise"]

VENV_BIN = Path(sys.executable).parent
ISTIO_BURST = (
    str(VENV_BIN / "istio-burst") if (VENV_BIN / "istio-burst").exists() else "istio-burst"
)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} is not installed: run the tests through ./run test, which installs it"
        )
    return path


def stop_on_signals() -> threading.Event:
    """An Event that Ctrl-C (SIGINT) or SIGTERM sets, instead of ending the program at once: so
    the caller's `finally` stops everything it started."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


def supervise(stop: threading.Event, processes: Iterable[ManagedProcess | None], tag: str) -> int:
    """Until `stop` is set (0) or one of `processes` exits (1, its output on stderr)."""
    running = [process for process in processes if process is not None]
    while not stop.wait(1.0):
        for process in running:
            if not process.alive():
                print(f"[{tag}] {process.name} exited:\n{process.output()}", file=sys.stderr)
                return 1
    return 0
