"""A scriptable HTTP server for the watcher's tests: the test sets what the next requests get.

Used where a real Prometheus cannot be made to misbehave on cue (malformed JSON, 5xx, a hang).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import orjson

from tests.support.http_server import BackgroundHTTPServer, send


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to wait before answering (a hang, for timeouts)


def vector(*values: str) -> bytes:
    """A successful Prometheus instant-vector answer with one series per value."""
    result = [{"metric": {"i": str(i)}, "value": [1700000000.0, v]} for i, v in enumerate(values)]
    return orjson.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})


class ScriptedServer(BackgroundHTTPServer):
    def __init__(self) -> None:
        self.answer = Answer(200, vector("0"))
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.paths.append(self.path)
                answer = server.answer
                if answer.delay:
                    time.sleep(answer.delay)
                send(self, answer.status, answer.body, answer.content_type)

            def log_message(self, *_: object) -> None:
                pass

        super().__init__(Handler)
