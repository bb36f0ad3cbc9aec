from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.exporter import LoadExporter
from tests.support.prometheus import PrometheusServer


@pytest.fixture
def load() -> Iterator[LoadExporter]:
    """A /metrics exporter standing in for the frontend's request counter; the test sets rates."""
    exporter = LoadExporter().start()
    yield exporter
    exporter.stop()


@pytest.fixture
def prometheus(tmp_path: Path, load: LoadExporter) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping `load` every second, with its first scrape done."""
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    server = PrometheusServer(workdir, {"frontend": [load.target]})
    server.start()
    try:
        server.wait_for_value('up{service="frontend"}', lambda v: v == 1, timeout=30)
        yield server
    finally:
        server.stop()
