"""Limits on every HTTP connection: header size and count, header and body deadlines.

uvicorn with httptools enforces none of these (an endless header line grows memory until the
OOM killer comes; a client that never finishes its headers holds its connection for ever), and
its h11 parser bounds header bytes only, at a cost to throughput. So this is uvicorn's httptools
protocol with a few counters and one timer per connection (bench/worker.py measures it):

- request line + headers over `max_header_bytes`, or more than `max_headers` headers: 431, and
  the connection is closed. Bytes still unparsed are counted too, so one endless header line is
  cut off after the limit plus one read;
- headers not complete `header_timeout` s after the request began: 408, closed;
- body not complete `body_timeout` s after the headers: 408 (or a plain close once the app
  answered), closed;
- a new connection that sends nothing for `keepalive_timeout` s is closed, as uvicorn closes an
  idle one between requests;
- past `max_connections` open connections (websockets included), a new request gets 503 and
  the connection is closed, and so does a new websocket handshake, before the upgrade: uvicorn's
  own `limit_concurrency` is checked only after a handshake has been handed to the websocket
  protocol, so it never refuses one. GET and HEAD on the probe and scrape paths (PROBE_PATHS)
  are answered whatever the count: a full service is not a dead one, and a liveness probe that
  got 503 would have it restarted, dropping every open page.

These hooks are uvicorn's httptools protocol's own methods, not a public API: pyproject.toml pins
uvicorn to the minor version they were written for, and tests/core/test_http_limits.py fails
when uvicorn stops calling any of them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from istio_burst.core.http_errors import error_body
from istio_burst.core.metrics import OVER_CAPACITY

# Liveness and readiness probes of every service, and Prometheus' scrapes.
PROBE_PATHS = frozenset({b"/", b"/_healthz", b"/healthz", b"/livez", b"/metrics"})
_PROBE_METHODS = frozenset({b"GET", b"HEAD"})


@dataclass(frozen=True)
class HTTPLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    max_connections: int


class _RefusedError(Exception):
    """Raised in a parser callback to stop parsing; uvicorn then calls send_400_response."""


_IDLE, _HEADERS, _BODY = 0, 1, 2
_HEADER_OVERHEAD = 4  # ": " and CRLF around each header


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HTTPLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn hands this to call_later, which takes float seconds.
        self.timeout_keep_alive = self.limits.keepalive_timeout  # type: ignore[assignment]
        self._phase = _IDLE
        self._header_bytes = 0  # request line and headers parsed so far
        self._unparsed_bytes = 0  # bytes fed while the headers were still incomplete
        self._header_count = 0
        self._websocket = False  # the request being parsed asks for a websocket
        self._refusal: tuple[int, str] | None = None
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    @classmethod
    def with_limits(cls, limits: HTTPLimits) -> type[LimitedHttpToolsProtocol]:
        return type(cls.__name__, (cls,), {"limits": limits})

    # --- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._set_deadline(self.limits.keepalive_timeout)  # closed if it never sends a request

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counting = self._phase == _HEADERS  # a read that starts a request is not counted
        super().data_received(data)
        if counting and self._phase == _HEADERS and not self.transport.is_closing():
            self._unparsed_bytes += len(data)
            if self._unparsed_bytes > self.limits.max_header_bytes:
                self._refuse(431, self._too_many_bytes())

    def handle_websocket_upgrade(self) -> None:
        self._stop_timer()  # the transport now belongs to the websocket protocol
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(*self._refusal)

    # --- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEADERS
        self._header_bytes = self._unparsed_bytes = self._header_count = 0
        self._websocket = False
        self._set_deadline(self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        # len() first: this runs for every header of every request, and few are 7 bytes long.
        if len(name) == 7 and name.lower() == b"upgrade" and value.lower() == b"websocket":
            self._websocket = True
        if self._header_count > self.limits.max_headers:
            self._refusal = (431, f"more than {self.limits.max_headers} headers")
            raise _RefusedError
        self._count_header_bytes(len(name) + len(value) + _HEADER_OVERHEAD)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._over_capacity() and not self._is_probe():
            OVER_CAPACITY.labels(kind="websocket" if self._websocket else "http").inc()
            self._refusal = (503, self._full())
            raise _RefusedError  # before uvicorn would hand a handshake to the websocket side
        self._phase = _BODY
        self._set_deadline(self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        self._deadline = None
        super().on_message_complete()

    # --- limits -----------------------------------------------------------------------------

    def _count_header_bytes(self, count: int) -> None:
        self._header_bytes += count
        if self._header_bytes > self.limits.max_header_bytes:
            self._refusal = (431, self._too_many_bytes())
            raise _RefusedError

    def _over_capacity(self) -> bool:
        # Every open connection's protocol, this one and the websockets' included.
        return len(self.connections) > self.limits.max_connections

    def _full(self) -> str:
        return f"more than {self.limits.max_connections} connections open; try again later"

    def _is_probe(self) -> bool:
        path = self.url.partition(b"?")[0]
        return self.parser.get_method() in _PROBE_METHODS and path in PROBE_PATHS

    def _too_many_bytes(self) -> str:
        return f"request line and headers over {self.limits.max_header_bytes} bytes"

    def _set_deadline(self, seconds: float) -> None:
        """One lazy timer per connection: moving a deadline later costs no rescheduling."""
        self._deadline = self.loop.time() + seconds
        if self._timer is None or self._deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = self._deadline
            self._timer = self.loop.call_at(self._deadline, self._on_timer)

    def _stop_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < self._deadline:
            self._timer_at = self._deadline
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
        elif self._phase == _HEADERS:
            self._refuse(
                408, f"request headers not complete within {self.limits.header_timeout:g}s"
            )
        elif self._phase == _BODY and not (self.cycle and self.cycle.response_started):
            self._refuse(408, f"request body not complete within {self.limits.body_timeout:g}s")
        else:
            self.transport.close()

    def _refuse(self, status: int, detail: str) -> None:
        """Answer with the shared JSON error and close: the rest of the request is not read."""
        self._stop_timer()
        body = error_body(status, detail)
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()
