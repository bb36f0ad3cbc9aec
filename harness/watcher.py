"""Starting `istio-burst watcher` as a real process, reading what it reports, and running its
terminal commands (`istio-burst watcher status|override`)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from harness.processes import ISTIO_BURST, ManagedProcess
from harness.services import start_service

# The request counter of `harness.exporter.LoadExporter`, which a test drives at will.
EXPORTER_QUERY = 'sum(rate(hashr_frontend_requests_total{outcome!="skipped"}[5s]))'

StartWatcher = Callable[..., tuple[ManagedProcess, str]]


def start_watcher(log_dir: Path, prometheus_url: str, **env: str) -> tuple[ManagedProcess, str]:
    """A watcher on a free port, serving (GET /livez answers); returns the process and base URL.

    Defaults suit a test: the LoadExporter's counter as the query, 0.5 s interval, short
    windows. Override any setting by its env name, e.g. ACTUATOR="haproxy", QUERY=...
    """
    defaults = {
        "PROMETHEUS_URL": prometheus_url,
        "QUERY": EXPORTER_QUERY,
        "INTERVAL": "0.5",
        "MIN_DWELL": "1",
        "STABILIZATION_WINDOW": "3",
        "MAX_FAILURES": "3",
    }
    return start_service("watcher", log_dir, "/livez", **{**defaults, **env})


@contextmanager
def watchers(log_dir: Path, prometheus_url: str, **defaults: str) -> Iterator[StartWatcher]:
    """`start(**env) -> (process, url)`: `start_watcher` with `defaults`, `env` over them;
    every watcher started is stopped on leaving."""
    started: list[ManagedProcess] = []

    def start(**env: str) -> tuple[ManagedProcess, str]:
        proc, url = start_watcher(log_dir, prometheus_url, **{**defaults, **env})
        started.append(proc)
        return proc, url

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


def watcher_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`istio-burst watcher ARGS...`, its output captured; it may fail (check returncode)."""
    return subprocess.run(
        [ISTIO_BURST, "watcher", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status(url: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(url + "/status", timeout=5).json()
    return data


def wait_status(
    proc: ManagedProcess, url: str, check: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    """Poll /status until `check` holds; returns that status (or raises with the last one)."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"watcher exited:\n{proc.output()}")
        last = status(url)
        if check(last):
            return last
        time.sleep(0.1)
    raise TimeoutError(f"watcher status never matched; last: {last}\n{proc.output()}")


def wait_rounds(proc: ManagedProcess, url: str, rounds: int) -> dict[str, Any]:
    """Wait until the watcher has reported `rounds` more rounds (its status `at` moved)."""
    state = status(url)
    for _ in range(rounds):
        state = wait_status(proc, url, _moved_from(state["at"]))
    return state


def _moved_from(seen: object) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s["at"] != seen
