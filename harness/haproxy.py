"""A real HAProxy (Debian's package) on free ports, with the demo's config, in front of two
workers; stoppable and restartable on the same ports (weights go back to the config's)."""

from __future__ import annotations

from pathlib import Path

from harness.ports import free_port
from harness.processes import ManagedProcess, require_binary
from istio_burst.core.contracts import PROXY_BACKEND, SUBSET_BURST, SUBSET_PRIMARY
from istio_burst.demo.haproxy import (
    ProxyPorts,
    haproxy_command,
    is_ready,
    prepare_config,
    proxy_env,
    runtime_command,
)


class HAProxyServer:
    def __init__(self, workdir: Path, primary: str, burst: str, runtime_bind: str = "") -> None:
        """`primary`/`burst`: the workers' `host:port`; `runtime_bind` overrides the runtime
        API's address (e.g. a unix socket path)."""
        self.workdir = workdir
        self.ports = ProxyPorts("127.0.0.1", free_port(), free_port(), free_port())
        self.env = proxy_env(self.ports, primary, burst)
        if runtime_bind:
            self.env["HAPROXY_RUNTIME_BIND"] = runtime_bind
        self.config_path = prepare_config(workdir)
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return self.ports.url

    @property
    def runtime_api(self) -> str:
        return self.ports.runtime_api

    def weights(self) -> tuple[int, int]:
        """The weights of servers primary and burst now, read as an operator would."""
        primary, burst = (
            int(
                runtime_command(self.runtime_api, f"get weight {PROXY_BACKEND}/{server}").split()[0]
            )
            for server in (SUBSET_PRIMARY, SUBSET_BURST)
        )
        return primary, burst

    def watcher_env(self) -> dict[str, str]:
        """The settings that point an `istio-burst watcher` process at this HAProxy."""
        return {"ACTUATOR": "haproxy", "HAPROXY_RUNTIME_API": self.runtime_api}

    @property
    def metrics_address(self) -> str:
        return self.ports.metrics_address

    def start(self, timeout: float = 20.0) -> HAProxyServer:
        proc = self.start_unchecked()
        proc.wait_until(lambda: is_ready(self.ports), timeout, "haproxy ready")
        return self

    def start_unchecked(self) -> ManagedProcess:
        """Started, not waited for (a runtime API elsewhere than the ready check looks)."""
        argv = haproxy_command(require_binary("haproxy"), self.config_path)
        self._proc = ManagedProcess(
            f"haproxy-{self.ports.port}", argv, self.workdir, self.env
        ).start()
        return self._proc

    def kill(self) -> None:
        """SIGKILL: gone at once, as a crashed proxy is."""
        if self._proc is not None:
            self._proc.signal(9)
            self._proc.wait_exit()
            self._proc.stop()
            self._proc = None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None


__all__ = ["HAProxyServer", "runtime_command"]
