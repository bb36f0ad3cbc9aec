"""The socket.io side: who may connect, what a page can say, and what every page is told.

Events (python-socketio server, socket.io-client 4 on the page):
  page -> server  `frequency`        {"freq": <number>}           set the deployment's rate
                  `received`         {"seq"}: the newest batch the page has handled (hash_relay.py)
  server -> page  `frequency`        {"freq", "max"}              on connect and on changes,
                                     coalesced (ANNOUNCE_INTERVAL): the latest value wins
                  `frequency_error`  {"error", "detail", "freq"}  a refused `frequency` (to sender):
                                     error `bad_frequency`, or `rate_limited` (once per run of
                                     dropped events: a page may send FREQUENCY_EVENTS_PER_SECOND)
                  `hashes`           {"seq", "hashes", "count", "counts", "sent_at"}
                  `routing`          {"reported", "primary", "burst", "actuator", ...}
                                     the watcher's weights (routing_view), with its state
                  `watcher`          {"state": <the watcher's object or null>}
                  `stats`            a PageStats (core/contracts.py), once a second
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import socketio

from istio_burst.core.background import BackgroundTasks
from istio_burst.core.contracts import PageStats
from istio_burst.frontend import metrics
from istio_burst.frontend.page.event_budget import FREQUENCY_EVENT, OVER_BUDGET_EVENT
from istio_burst.frontend.page.frequency_input import FrequencyError, parse_frequency
from istio_burst.frontend.page.hosts import OriginCheck
from istio_burst.frontend.page.watcher_state import StateView, routing_view
from istio_burst.frontend.replicas.shared_frequency import FrequencyNotSharedError, SharedFrequency

log = logging.getLogger(__name__)

FREQUENCY_ERROR_EVENT = "frequency_error"
ROUTING_EVENT = "routing"
WATCHER_EVENT = "watcher"
STATS_EVENT = "stats"
# A page only ever sends tiny `frequency` events: the most one socket.io message may carry, on
# either transport (the guard in front of /socket.io/ and the server's websocket frame limit).
MAX_MESSAGE_BYTES = 64 * 1024
# Changes are announced to the pages at most this often (the newest value last): each
# announcement is an event to every page, so a flood of changes must cost a bounded number.
ANNOUNCE_INTERVAL = 0.1


def create_socket_server(origin_check: OriginCheck) -> socketio.AsyncServer:
    return socketio.AsyncServer(
        async_mode="asgi",
        cors_allowed_origins=origin_check,
        # Accept first, then send the current state from the connect handler.
        always_connect=True,
        max_http_buffer_size=MAX_MESSAGE_BYTES,
        logger=False,
        engineio_logger=False,
    )


class Pages:
    """Every open page: the state a new page is sent, and the handlers of what pages send."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        shared: SharedFrequency,
        maximum: float,
        *,
        events_per_second: float,
        on_join: Callable[[str], None],
        on_leave: Callable[[str], None],
    ) -> None:
        self.sio = sio
        self.shared = shared
        self.maximum = maximum
        self.count = 0
        self.routing: dict[str, Any] = routing_view(None)
        self.watcher: dict[str, Any] = {"state": None}
        self.stats: dict[str, Any] | None = None
        self._on_join = on_join
        self._on_leave = on_leave
        self._events_per_second = events_per_second
        self._news = asyncio.Event()
        self._watcher_news = asyncio.Event()
        self._tasks = BackgroundTasks()
        shared.on_change(self._news.set)
        sio.on("connect", self._connect)
        sio.on("disconnect", self._disconnect)
        sio.on(FREQUENCY_EVENT, self._frequency)
        sio.on(OVER_BUDGET_EVENT, self._over_budget)

    def start(self) -> None:
        self._tasks.start(self._announce_loop(), "frequency-announcer")
        self._tasks.start(self._watcher_loop(), "watcher-announcer")

    async def stop(self) -> None:
        await self._tasks.stop()

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
        log.info(
            "frequency requested", extra={"from": self.shared.value, "to": frequency, "page": sid}
        )
        # Every page on every replica (the sender too) is told when it comes back from Redis.

    async def _announce_loop(self) -> None:
        """The frequency, and whether it is shared, to every page after each change; at most
        every ANNOUNCE_INTERVAL, the newest value last."""
        while True:
            await self._news.wait()
            self._news.clear()
            try:
                await self.sio.emit(FREQUENCY_EVENT, self.frequency_payload())
            except Exception:  # a page that cannot be told must not stop the others being told
                log.exception("could not announce the frequency")
            await asyncio.sleep(ANNOUNCE_INTERVAL)

    async def _over_budget(self, sid: str, *_: Any) -> None:
        """The page sent `frequency` events over its budget: they were dropped and counted as
        they arrived (socket_guard.py); it is told once per run of drops."""
        detail = (
            f"more than {self._events_per_second:g} frequency changes a second from this page; "
            "the extra ones are dropped"
        )
        await self.sio.emit(
            FREQUENCY_ERROR_EVENT,
            {"error": "rate_limited", "detail": detail, "freq": self.shared.value},
            to=sid,
        )

    def set_watcher(self, state: StateView | None) -> None:
        """The watcher's state (None: none reported yet), and the routing it reports; told to
        every page by _watcher_loop, so the subscription that delivers it is not held up."""
        self.watcher = {"state": state}
        routing = routing_view(state)
        if routing != self.routing:
            log.info("route weights", extra={"routing": routing})
        self.routing = routing
        self._watcher_news.set()

    async def _watcher_loop(self) -> None:
        """The newest routing and watcher state to every page after each change."""
        while True:
            await self._watcher_news.wait()
            self._watcher_news.clear()
            try:
                await self.sio.emit(ROUTING_EVENT, self.routing)
                await self.sio.emit(WATCHER_EVENT, self.watcher)
            except Exception:  # a page that cannot be told must not stop the others being told
                log.exception("could not announce the watcher state")

    async def set_stats(self, stats: PageStats) -> None:
        self.stats = stats.model_dump()
        if self.count:
            await self.sio.emit(STATS_EVENT, self.stats)
