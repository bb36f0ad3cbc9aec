"""The socket.io side: who may connect, what a page can say, and what every page is told.

Events (python-socketio server, socket.io-client 4 on the page):
  page -> server  `frequency`        {"freq": <number>}           set the deployment's rate
                  `received`         {"seq"}: the newest batch the page has handled (relay.py)
  server -> page  `frequency`        {"freq", "max"}              on connect and on changes,
                                     coalesced (ANNOUNCE_INTERVAL): the latest value wins
                  `frequency_error`  {"error", "detail", "freq"}  a refused `frequency` (to sender):
                                     error `bad_frequency`, or `rate_limited` (once per run of
                                     dropped events: a page may send FREQUENCY_EVENTS_PER_SECOND)
                  `hashes`           {"seq", "hashes", "count", "counts", "sent_at"}
                  `routing`          {"reported", "primary", "burst", "actuator", ...}
                                     the watcher's weights (routing_view), with its state
                  `watcher`          {"state": <the watcher's object or null>}
                  `stats`            the load driver's figures, once a second (driver.py)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import socketio

from istio_burst.core.contracts import SUBSET_BURST, SUBSET_PRIMARY
from istio_burst.frontend import metrics
from istio_burst.frontend.frequency import FrequencyError, parse_frequency
from istio_burst.frontend.hosts import OriginCheck
from istio_burst.frontend.shared_frequency import FrequencyNotSharedError, SharedFrequency
from istio_burst.frontend.throttle import TokenBucket

log = logging.getLogger(__name__)

FREQUENCY_EVENT = "frequency"
FREQUENCY_ERROR_EVENT = "frequency_error"
ROUTING_EVENT = "routing"
WATCHER_EVENT = "watcher"
STATS_EVENT = "stats"
# A page only ever sends tiny `frequency` events: the most one socket.io message may carry, on
# either transport (the guard in front of /socket.io/ and the server's websocket frame limit).
MAX_MESSAGE_BYTES = 64 * 1024


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


def routing_view(state: dict[str, Any] | None) -> dict[str, Any]:
    """What the Routing card shows: the weights as the watcher reports them, and who applies
    them (`haproxy` locally, `istio` in Kubernetes); before any report, only that there is none.
    """
    if state is None:
        return {"reported": False}
    weights = state["weights"]  # checked by the feed
    return {
        "reported": True,
        SUBSET_PRIMARY: weights[SUBSET_PRIMARY],
        SUBSET_BURST: weights[SUBSET_BURST],
        "actuator": state.get("actuator") or None,
        "target": state.get("target") or None,
        "dry_run": bool(state.get("dry_run", False)),
        "at": state.get("at"),
        "routing": state.get("routing") or None,  # {state, detail, ...}: in force yet?
    }


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
        # Per page: its `frequency` event budget, and whether it was told it ran out.
        self._budgets: dict[str, TokenBucket] = {}
        self._told_limited: set[str] = set()
        sio.on("connect", self._connect)
        sio.on("disconnect", self._disconnect)
        sio.on(FREQUENCY_EVENT, self._frequency)

    def frequency_payload(self) -> dict[str, float | bool]:
        return {"freq": self.shared.value, "max": self.maximum, "shared": self.shared.shared}

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self._budgets[sid] = TokenBucket(self._events_per_second)
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
        self._budgets.pop(sid, None)
        self._told_limited.discard(sid)
        self._on_leave(sid)

    async def _frequency(self, sid: str, *args: Any) -> None:
        budget = self._budgets.get(sid)
        if budget is not None and not budget.take():
            await self._drop(sid)
            return
        self._told_limited.discard(sid)
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
        # Every page on every replica (the sender too) is told when it comes back from Redis,
        # by `announce_frequency`, at most every ANNOUNCE_INTERVAL (shared_frequency.py).

    async def announce_frequency(self) -> None:
        await self.sio.emit(FREQUENCY_EVENT, self.frequency_payload())

    async def _drop(self, sid: str) -> None:
        """Over its budget: the event is dropped and counted; the page is told once per run."""
        metrics.FREQUENCY_DROPPED.inc()
        if sid in self._told_limited:
            return
        self._told_limited.add(sid)
        detail = (
            f"more than {self._events_per_second:g} frequency changes a second from this page; "
            "the extra ones are dropped"
        )
        await self.sio.emit(
            FREQUENCY_ERROR_EVENT,
            {"error": "rate_limited", "detail": detail, "freq": self.shared.value},
            to=sid,
        )

    async def set_watcher(self, state: dict[str, Any] | None) -> None:
        """The watcher's state (None: none reported yet), and the routing it reports."""
        self.watcher = {"state": state}
        routing = routing_view(state)
        if routing != self.routing:
            log.info("route weights", extra={"routing": routing})
        self.routing = routing
        await self.sio.emit(ROUTING_EVENT, routing)
        await self.sio.emit(WATCHER_EVENT, self.watcher)

    async def set_stats(self, stats: dict[str, Any]) -> None:
        self.stats = stats
        if self.count:
            await self.sio.emit(STATS_EVENT, stats)
