"""Starting, watching and stopping a set of local processes, in order, leaving nothing behind."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class DemoError(Exception):
    """Something the user must act on; the message says what and how."""


ReadyCheck = Callable[[], bool]


@dataclass
class Component:
    name: str
    argv: Sequence[str]
    port: int
    ready: ReadyCheck
    env: Mapping[str, str] = field(default_factory=dict)
    hint: str = ""  # what to do when this component fails
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None


def http_ok(url: str) -> ReadyCheck:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def http_answers(url: str) -> ReadyCheck:
    """Any HTTP answer: the process is up, whatever it thinks of its dependencies."""

    def check() -> bool:
        try:
            httpx.get(url, timeout=1.0)
        except httpx.HTTPError:
            return False
        return True

    return check


def redis_pong(host: str, port: int) -> ReadyCheck:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return check


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DemoError(
            f"{name} is not installed. `./run demo` installs it on Debian as root; "
            f"elsewhere install the package {package!r} and try again."
        )
    return path


def die_with_parent() -> None:
    """In a child before exec: SIGTERM it when the thread that started it exits (Linux only).

    Linux ties this to the starting *thread*: start children from a thread that lives as long
    as they should (the main thread, or a pool thread kept until the end).
    """
    # Linux: the child gets SIGTERM if the demo itself is killed (even by SIGKILL), so a
    # crashed supervisor leaves no orphans behind. Elsewhere this is a no-op.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class Supervisor:
    def __init__(self, log_dir: Path, say: Callable[[str], None], start_timeout: float) -> None:
        self.log_dir = log_dir
        self.say = say
        self.start_timeout = start_timeout
        self.started: list[Component] = []
        self.stop_requested = threading.Event()

    def start(self, component: Component) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        component.log_path = self.log_dir / f"{component.name}.log"
        with component.log_path.open("wb") as log:
            component.proc = subprocess.Popen(
                list(component.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **component.env},
                start_new_session=True,  # Ctrl-C reaches only us; we stop children in order
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl, no locks
            )
        self.started.append(component)
        deadline = time.monotonic() + self.start_timeout
        while not component.ready():
            self._raise_if_exited(component)
            if self.stop_requested.is_set():
                return
            if time.monotonic() > deadline:
                raise DemoError(
                    f"{component.name} did not become ready within {self.start_timeout:g} s "
                    f"(port {component.port}). {self._log_hint(component)}"
                )
            self.stop_requested.wait(0.1)

    def watch(self) -> None:
        """Block until a stop is requested; raise if any component exits meanwhile."""
        while not self.stop_requested.wait(0.25):
            for component in self.started:
                self._raise_if_exited(component)

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop in reverse start order: SIGTERM, wait, then SIGKILL the process group."""
        for component in reversed(self.started):
            proc = component.proc
            if proc is None:
                continue
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.say(f"  {component.name} did not stop in {timeout:g} s; killing it")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            self.say(f"  stopped {component.name}")
        self.started.clear()

    def _raise_if_exited(self, component: Component) -> None:
        proc = component.proc
        if proc is not None and proc.poll() is not None:
            hint = f"{component.hint} " if component.hint else ""
            raise DemoError(
                f"{component.name} exited with code {proc.returncode}. "
                f"{hint}{self._log_hint(component)}"
            )

    @staticmethod
    def _log_hint(component: Component) -> str:
        if component.log_path is None:
            return ""
        tail = component.log_path.read_text(errors="replace").strip().splitlines()[-8:]
        shown = "\n    ".join(tail) if tail else "(no output)"
        return f"Its log is {component.log_path}; last lines:\n    {shown}"
