"""A webhook receiver: a real HTTP server that keeps every JSON POST it gets (path and body)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from harness.http_server import BackgroundHTTPServer, send


class WebhookReceiver(BackgroundHTTPServer):
    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = orjson.loads(self.rfile.read(length))
                with receiver._lock:
                    receiver.received.append((self.path, body))
                send(self, 200, b"ok", "text/plain")

            def log_message(self, *_: object) -> None:
                pass

        super().__init__(Handler)

    def bodies(self) -> list[Any]:
        with self._lock:
            return [body for _, body in self.received]

    def wait_for(self, check: Any, timeout: float = 30) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            bodies = self.bodies()
            if check(bodies):
                return bodies
            time.sleep(0.1)
        raise TimeoutError(f"the webhook never got what was expected; got {self.bodies()}")
