"""A webhook receiver: a real HTTP server that keeps every JSON POST it gets (path and body)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from harness.http_server import BackgroundHTTPServer, send


class WebhookReceiver(BackgroundHTTPServer):
    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = orjson.loads(self.rfile.read(length))
                with receiver._arrived:
                    receiver.received.append((self.path, body))
                    receiver._arrived.notify_all()
                send(self, 200, b"ok", "text/plain")

            def log_message(self, *_: object) -> None:
                pass

        super().__init__(Handler)

    def bodies(self) -> list[Any]:
        with self._arrived:
            return self._bodies()

    def wait_for(self, check: Callable[[list[Any]], bool], timeout: float = 30) -> list[Any]:
        """The bodies so far, once `check` holds for them (each POST wakes the check)."""
        with self._arrived:
            met = self._arrived.wait_for(lambda: check(self._bodies()), timeout)
            bodies = self._bodies()
        if not met:
            raise TimeoutError(f"the webhook never got what was expected; got {bodies}")
        return bodies

    def _bodies(self) -> list[Any]:
        return [body for _, body in self.received]
