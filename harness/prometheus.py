"""A real Prometheus (Debian's package) on a free port, scraping the targets a test names
(each series labelled `service=<name>`).

Built on `istio_burst.demo.prometheus` (the demo's launcher too). Stoppable and
restartable on the same port with the same data, so a test can take Prometheus away and bring it
back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from harness.ports import free_port
from harness.processes import ManagedProcess, require_binary
from istio_burst.demo.prometheus import is_ready, prepare_config, prometheus_command


class PrometheusServer:
    def __init__(
        self,
        workdir: Path,
        targets: dict[str, list[str]],
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.storage_dir = workdir / "tsdb"
        # The repository's own config (1 s scrape), as the demo and docker-compose use it.
        self.config_path = prepare_config(workdir, targets)
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        argv = prometheus_command(
            require_binary("prometheus"),
            str(self.config_path),
            str(self.storage_dir),
            self.port,
        )
        self._proc = ManagedProcess(f"prometheus-{self.port}", argv, self.workdir).start()
        self._proc.wait_until(lambda: is_ready(self.url), timeout, "prometheus /-/ready")
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def query(self, promql: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        data: dict[str, Any] = response.json()
        return data

    def wait_for_value(self, promql: str, predicate: Any, timeout: float = 20.0) -> float:
        """Poll `promql` until its single value satisfies `predicate`; returns the value."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            result = self.query(promql).get("data", {}).get("result", [])
            if len(result) == 1:
                value = float(result[0]["value"][1])
                last = value
                if predicate(value):
                    return value
            time.sleep(0.2)
        raise TimeoutError(f"{promql} never satisfied the condition; last value {last}")
