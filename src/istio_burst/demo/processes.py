"""Starting, watching and stopping local child processes, leaving nothing behind.

The one process runner of the project: the demo's supervisor, the tests and the benchmarks all
start their redis-server, Prometheus and services through `ManagedProcess`. Each child writes
stdout and stderr to its own log file, runs in its own process group (so stopping it reaches
anything it started) and, on Linux, dies with the thread that started it, even if that is
SIGKILLed: a crashed demo or test run leaves no orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx


def die_with_parent() -> None:
    """In a child before exec: SIGTERM it when the thread that started it exits (Linux only).

    Linux ties this to the starting *thread*: start children from a thread that lives as long
    as they should (the main thread, or a pool thread kept until the end). Elsewhere a no-op.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def answers_200(url: str, timeout: float = 1.0) -> bool:
    """True when GET `url` answers 200."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class ManagedProcess:
    """A child process whose output goes to `<log_dir>/<name>.log`; stop() leaves nothing."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, fresh_log: bool = False) -> ManagedProcess:
        """Start it; its log is appended to (a restart keeps the earlier output) unless fresh."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb" if fresh_log else "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # its own group: Ctrl-C reaches only us; stop() the rest
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl, no locks
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once it has exited (negative: the signal that ended it), else None."""
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_until(self, check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
        """Until `check()` holds; raises (and stops it) if it exits or the time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.output()}")
            if check():
                return
            time.sleep(0.05)
        output = self.output()
        self.stop()  # a process that never became ready must not outlive its caller
        raise TimeoutError(f"{self.name}: {what or 'condition'} not met in {timeout}s:\n{output}")

    def wait_http_ok(self, url: str, timeout: float = 20.0) -> None:
        self.wait_until(lambda: answers_200(url), timeout, f"GET {url} -> 200")

    def signal(self, sig: int) -> None:
        assert self.proc is not None, f"{self.name} was never started"
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, up to `timeout` s to exit, then SIGKILL its whole group; the exit code
        (-9 when it had to be killed), None if it never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # what it left behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode

    def output(self, limit: int = 4000) -> str:
        """The end of its log (at most `limit` characters)."""
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except FileNotFoundError:
            return ""
