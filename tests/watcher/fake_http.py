"""A scriptable HTTP server for the watcher's tests: the test sets what the next requests get.

Used where a real Prometheus cannot be made to misbehave on cue (malformed JSON, 5xx, a hang,
a redirect, an answer trickled a byte at a time).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import orjson

from harness.http_server import BackgroundHTTPServer, send


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to wait before answering (a hang, for timeouts)
    trickle: float = 0.0  # seconds between the bytes of the whole answer, status line included
    headers: dict[str, str] = field(default_factory=dict)  # e.g. a redirect's Location


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
                if answer.trickle:
                    trickle(self, answer)
                else:
                    send(self, answer.status, answer.body, answer.content_type, answer.headers)

            def log_message(self, *_: object) -> None:
                pass

        super().__init__(Handler)


def trickle(handler: BaseHTTPRequestHandler, answer: Answer) -> None:
    """A valid answer, each byte on its own after `answer.trickle` s, until the client leaves."""
    head = (
        f"HTTP/1.1 {answer.status} OK\r\nContent-Type: {answer.content_type}\r\n"
        f"Content-Length: {len(answer.body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    handler.close_connection = True
    try:
        for byte in head + answer.body:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(answer.trickle)
    except OSError:
        pass  # the client gave up, as it should
