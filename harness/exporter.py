"""A tiny /metrics exporter whose request counter a test (or a bench) drives at chosen rates.

It stands in for the frontend's `hashr_frontend_requests_total{target,outcome}`: each series is
a counter growing at the rate last set for it, computed when scraped, so no thread has to tick.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler

from harness.http_server import BackgroundHTTPServer, send
from istio_burst.core.contracts import FRONTEND_REQUESTS_METRIC


class _Series:
    def __init__(self) -> None:
        self.total = 0.0
        self.rate = 0.0
        self.since = time.monotonic()

    def value(self, now: float) -> float:
        return self.total + self.rate * (now - self.since)

    def set_rate(self, rate: float, now: float) -> None:
        self.total = self.value(now)
        self.rate = rate
        self.since = now


class LoadExporter(BackgroundHTTPServer):
    def __init__(self, metric: str = FRONTEND_REQUESTS_METRIC) -> None:
        self.metric = metric
        self._series: dict[tuple[str, str], _Series] = {}
        self._lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    send(self, 200, exporter.render(), "text/plain; version=0.0.4")
                else:
                    send(self, 404, b"not found\n", "text/plain")

            def log_message(self, *_: object) -> None:
                pass

        super().__init__(Handler)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_rate(self, rate: float, target: str = "primary", outcome: str = "ok") -> None:
        """From now on the series {target, outcome} grows by `rate` per second."""
        with self._lock:
            series = self._series.setdefault((target, outcome), _Series())
            series.set_rate(rate, time.monotonic())

    def render(self) -> bytes:
        now = time.monotonic()
        lines = [f"# TYPE {self.metric} counter"]
        with self._lock:
            for (target, outcome), series in sorted(self._series.items()):
                labels = f'target="{target}",outcome="{outcome}"'
                lines.append(f"{self.metric}{{{labels}}} {series.value(now):.3f}")
        return ("\n".join(lines) + "\n").encode()
