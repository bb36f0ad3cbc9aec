"""Starting, watching and stopping a set of local processes, in order, leaving nothing behind."""

from __future__ import annotations

import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from istio_burst.core.processes import ManagedProcess, answers_200


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
    start_timeout: float | None = None  # instead of the supervisor's, for a slow starter
    process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path | None:
        return None if self.process is None else self.process.log_path


def http_ok(url: str) -> ReadyCheck:
    return lambda: answers_200(url)


def http_answers(url: str) -> ReadyCheck:
    """Any HTTP answer: the process is up, whatever it thinks of its dependencies."""

    def check() -> bool:
        try:
            httpx.get(url, timeout=1.0)
        except httpx.HTTPError:
            return False
        return True

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


class Supervisor:
    def __init__(self, log_dir: Path, say: Callable[[str], None], start_timeout: float) -> None:
        self.log_dir = log_dir
        self.say = say
        self.start_timeout = start_timeout
        self.started: list[Component] = []
        self.stop_requested = threading.Event()

    def start(self, component: Component) -> None:
        component.process = ManagedProcess(
            component.name, component.argv, self.log_dir, component.env
        ).start(fresh_log=True)
        self.started.append(component)
        timeout = component.start_timeout or self.start_timeout
        deadline = time.monotonic() + timeout
        while not component.ready():
            self._raise_if_exited(component)
            if self.stop_requested.is_set():
                return
            if time.monotonic() > deadline:
                raise DemoError(
                    f"{component.name} did not become ready within {timeout:g} s "
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
            if component.process is None:
                continue
            if component.process.stop(timeout) == -signal.SIGKILL:
                self.say(f"  {component.name} did not stop in {timeout:g} s; killed it")
            self.say(f"  stopped {component.name}")
        self.started.clear()

    def _raise_if_exited(self, component: Component) -> None:
        process = component.process
        if process is not None and process.returncode is not None:
            hint = f"{component.hint} " if component.hint else ""
            raise DemoError(
                f"{component.name} exited with code {process.returncode}. "
                f"{hint}{self._log_hint(component)}"
            )

    @staticmethod
    def _log_hint(component: Component) -> str:
        if component.log_path is None:
            return ""
        tail = component.log_path.read_text(errors="replace").strip().splitlines()[-8:]
        shown = "\n    ".join(tail) if tail else "(no output)"
        return f"Its log is {component.log_path}; last lines:\n    {shown}"
