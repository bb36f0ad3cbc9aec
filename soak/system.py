"""The local system as the demo runs it, with the handles a fault needs: stop, kill, start again.

The components and their order are the demo's own (`build_components`); the soak only adds what
an operator does to them: restart, SIGKILL, reload HAProxy, stop Prometheus for a while.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.ports import free_consecutive_ports, free_port
from istio_burst.demo import haproxy, redis_server
from istio_burst.demo.main import build_components, frontend_ports
from istio_burst.demo.processes import ManagedProcess
from istio_burst.demo.settings import DemoSettings
from istio_burst.demo.supervisor import Component, Supervisor

START_TIMEOUT = 60.0  # seconds a component may take to start, on a loaded machine


@dataclass(frozen=True)
class Ports:
    """Where the soak reaches each component: the address and ports the demo gave it."""

    settings: DemoSettings

    def _url(self, port: int) -> str:
        return f"http://{self.settings.bind}:{port}"

    @property
    def frontends(self) -> list[str]:
        return [self._url(port) for port in frontend_ports(self.settings)]

    @property
    def watcher(self) -> str:
        return self._url(self.settings.watcher_port)

    @property
    def primary(self) -> str:
        return self._url(self.settings.primary_port)

    @property
    def burst(self) -> str:
        return self._url(self.settings.burst_port)

    @property
    def runtime_api(self) -> str:
        s = self.settings
        return haproxy.ProxyPorts(
            s.bind, s.proxy_port, s.proxy_metrics_port, s.proxy_api_port
        ).runtime_api

    @property
    def redis_url(self) -> str:
        return redis_server.redis_url(self.settings.redis_port, self.settings.redis_password)


def soak_settings(frontends: int, state_dir: Path) -> DemoSettings:
    """The demo's settings on free ports, with a password the soak knows (for its own tap)."""
    return DemoSettings(
        frontend_port=free_consecutive_ports(frontends),
        frontends=frontends,
        primary_port=free_port(),
        burst_port=free_port(),
        watcher_port=free_port(),
        redis_port=free_port(),
        redis_password=redis_server.new_password(),
        proxy_port=free_port(),
        proxy_metrics_port=free_port(),
        proxy_api_port=free_port(),
        prometheus_port=free_port(),
        state_dir=state_dir,
        start_timeout=START_TIMEOUT,
        log_format="json",
    )


class System:
    """Every component of the demo, started in the demo's order; the faults act on them."""

    def __init__(self, settings: DemoSettings) -> None:
        self.settings = settings
        self.ports = Ports(settings)
        self.state_dir = settings.state_dir.resolve()
        self.log_dir = self.state_dir / "logs"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(self.log_dir, lambda _line: None, settings.start_timeout)
        self.components = {c.name: c for c in build_components(settings, self.state_dir)}

    def start(self) -> None:
        for component in self.components.values():
            self.supervisor.start(component)

    def stop(self) -> None:
        self.supervisor.stop_all()

    def __iter__(self) -> Iterator[Component]:
        return iter(self.components.values())

    def process(self, name: str) -> ManagedProcess:
        process = self.components[name].process
        assert process is not None, f"{name} was never started"
        return process

    def pids(self) -> dict[str, int]:
        """Each component's live process id (absent while it is down)."""
        return {c.name: c.process.pid for c in self if c.process is not None and c.process.alive()}

    # What the faults do. Starting happens on the caller's thread (a child dies with the thread
    # that started it); the waits block, so the soak runs them in a worker thread.

    def kill(self, name: str) -> None:
        """SIGKILL, as the kernel's OOM killer or a crash would (wait_exit to see it gone)."""
        self.process(name).signal(signal.SIGKILL)

    def start_again(self, name: str) -> None:
        """Start it again on its own ports, its log appended to."""
        self.process(name).start()

    def wait_ready(self, name: str) -> None:
        self.process(name).wait_until(
            self.components[name].ready, self.settings.start_timeout, f"{name} ready"
        )

    def reload_haproxy(self) -> ManagedProcess:
        """As an operator reloads a standalone HAProxy: a new process with `-sf <old pid>` takes
        over the listeners and the old one finishes its connections and exits. Returns the old
        process (to wait for)."""
        component = self.components["haproxy"]
        old = self.process("haproxy")
        new = ManagedProcess(
            "haproxy", [*component.argv, "-sf", str(old.pid)], self.log_dir, component.env
        ).start()
        new.argv = list(component.argv)  # a later restart is a plain start
        component.process = new
        return old
