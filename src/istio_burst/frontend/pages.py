"""The socket.io side: who may connect, what a page can say, and what every page is told.

Events (python-socketio server, socket.io-client 4 on the page):
  page -> server  `frequency`        {"freq": <number>}           set the deployment's rate
  server -> page  `frequency`        {"freq", "max", "shared"}    on connect and on every change
                                     (shared false: Redis is away, changes cannot be shared)
                  `frequency_error`  {"error", "detail", "freq"}  a refused `frequency` (to sender)
                  `hashes`           {"hashes", "count", "counts", "sent_at"}  (relay.py)
                  `routing`          {"primary", "burst", "source", "applied_by"}
                  `watcher`          {"state": <the watcher's object or null>}
                  `stats`            the load driver's figures, once a second (driver.py)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import socketio

from istio_burst.frontend import metrics
from istio_burst.frontend.frequency import FrequencyError, parse_frequency
from istio_burst.frontend.shared_frequency import FrequencyNotSharedError, SharedFrequency

log = logging.getLogger(__name__)

FREQUENCY_EVENT = "frequency"
FREQUENCY_ERROR_EVENT = "frequency_error"
ROUTING_EVENT = "routing"
WATCHER_EVENT = "watcher"
STATS_EVENT = "stats"
NAMESPACE = "/"

OriginCheck = Callable[[str | None, dict[str, Any]], bool]


def origin_check(extra_origins: list[str]) -> OriginCheck:
    """Same-origin (as the browser sees the page, proxies included) plus the listed origins."""
    allowed = frozenset(extra_origins)

    def check(origin: str | None, environ: dict[str, Any]) -> bool:
        if origin is None or origin in allowed:
            return True
        scope = environ.get("asgi.scope", {})
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        host = environ.get("HTTP_HOST", "")
        forwarded_proto = _first(environ.get("HTTP_X_FORWARDED_PROTO"))
        forwarded_host = _first(environ.get("HTTP_X_FORWARDED_HOST"))
        same = {f"{scheme}://{host}"}
        if forwarded_proto or forwarded_host:
            same.add(f"{forwarded_proto or scheme}://{forwarded_host or host}")
        return origin in same

    return check


def _first(header: str | None) -> str:
    return header.split(",")[0].strip() if header else ""


def create_socket_server(extra_origins: list[str]) -> socketio.AsyncServer:
    return socketio.AsyncServer(
        async_mode="asgi",
        cors_allowed_origins=origin_check(extra_origins),
        # Accept first, then send the current state from the connect handler.
        always_connect=True,
        # A page only ever sends tiny `frequency` events.
        max_http_buffer_size=64 * 1024,
        logger=False,
        engineio_logger=False,
    )


def queued_packets(sio: socketio.AsyncServer) -> Callable[[str], int]:
    """How many packets a page's socket has queued and not yet written (0 if unknown).

    Reaches into Engine.IO's per-socket queue: the only place that says a page is not keeping up.
    """

    def count(sid: str) -> int:
        eio_sid = sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        sock = sio.eio.sockets.get(eio_sid) if eio_sid is not None else None
        queue = getattr(sock, "queue", None)
        return int(queue.qsize()) if queue is not None else 0

    return count


class Pages:
    """Every open page: the state a new page is sent, and the handlers of what pages send."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        shared: SharedFrequency,
        maximum: float,
        *,
        on_join: Callable[[str], None],
        on_leave: Callable[[str], None],
    ) -> None:
        self.sio = sio
        self.shared = shared
        self.maximum = maximum
        self.count = 0
        self.routing: dict[str, Any] = {}
        self.watcher: dict[str, Any] = {"state": None}
        self.stats: dict[str, Any] | None = None
        self._on_join = on_join
        self._on_leave = on_leave
        sio.on("connect", self._connect)
        sio.on("disconnect", self._disconnect)
        sio.on(FREQUENCY_EVENT, self._frequency)

    def frequency_payload(self) -> dict[str, float | bool]:
        return {"freq": self.shared.value, "max": self.maximum, "shared": self.shared.shared}

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.count += 1
        metrics.CONNECTED_PAGES.set(self.count)
        await self.sio.emit(FREQUENCY_EVENT, self.frequency_payload(), to=sid)
        await self.sio.emit(ROUTING_EVENT, self.routing, to=sid)
        await self.sio.emit(WATCHER_EVENT, self.watcher, to=sid)
        if self.stats is not None:
            await self.sio.emit(STATS_EVENT, self.stats, to=sid)
        self._on_join(sid)

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        self.count -= 1
        metrics.CONNECTED_PAGES.set(self.count)
        self._on_leave(sid)

    async def _frequency(self, sid: str, *args: Any) -> None:
        # No payload arrives as no argument; several as several: both are refused below.
        payload = args[0] if len(args) == 1 else (None if not args else list(args))
        try:
            frequency = parse_frequency(payload, self.maximum)
        except FrequencyError as exc:
            metrics.FREQUENCY_REFUSED.inc()
            await self.sio.emit(
                FREQUENCY_ERROR_EVENT,
                {"error": "bad_frequency", "detail": str(exc), "freq": self.shared.value},
                to=sid,
            )
            return
        try:
            changes = self.shared.request(frequency)
        except FrequencyNotSharedError as exc:
            await self.sio.emit(
                FREQUENCY_ERROR_EVENT,
                {"error": "not_shared", "detail": str(exc), "freq": self.shared.value},
                to=sid,
            )
            return
        if not changes:
            # Nothing changes: confirm to the sender only (a page cannot make everyone busy).
            await self.sio.emit(FREQUENCY_EVENT, self.frequency_payload(), to=sid)
            return
        log.debug("frequency requested", extra={"from": self.shared.value, "to": frequency})
        # Every page on every replica (the sender too) is told when it comes back from Redis.

    async def announce_frequency(self) -> None:
        await self.sio.emit(FREQUENCY_EVENT, self.frequency_payload())

    async def set_routing(self, routing: dict[str, Any]) -> None:
        self.routing = routing
        await self.sio.emit(ROUTING_EVENT, routing)

    async def set_watcher(self, state: dict[str, Any] | None) -> None:
        self.watcher = {"state": state}
        await self.sio.emit(WATCHER_EVENT, self.watcher)

    async def set_stats(self, stats: dict[str, Any]) -> None:
        self.stats = stats
        if self.count:
            await self.sio.emit(STATS_EVENT, stats)
