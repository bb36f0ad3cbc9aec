"""The container test's measurements, shown at the end of the pytest run."""

from __future__ import annotations

import pytest

MEASURED: dict[str, float] = {}


def report(timings: dict[str, float]) -> None:
    MEASURED.update(timings)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASURED:
        terminalreporter.section("docker compose measurements")
        for name, value in MEASURED.items():
            terminalreporter.write_line(f"{name:<50} {value:8.1f}")
