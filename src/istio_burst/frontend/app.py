"""The frontend as one ASGI app: socket.io in front, FastAPI (page, probes, metrics) behind it.

How a slider move flows, one way: a page's `frequency` event (page/pages.py) -> the shared
frequency, written to Redis (replicas/shared_frequency.py) -> back on the replica's one Redis
subscription (replicas/subscription.py) -> this replica's share of the load (replicas/share.py,
load/driver.py) and the announcement to its pages (page/pages.py). Each part registers with
what it listens to when it is built, so nothing is wired before it exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import socketio
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from istio_burst.core.background import BackgroundTasks
from istio_burst.core.contracts import RedisStatus
from istio_burst.core.http_errors import (
    JSONBytesResponse,
    install_error_handlers,
    readiness_response,
)
from istio_burst.core.metrics import metrics_endpoint
from istio_burst.core.redis import create_client, ping_reason
from istio_burst.frontend.load.driver import LoadDriver
from istio_burst.frontend.page.assets import STATIC_DIR, check_assets, render_page
from istio_burst.frontend.page.hash_relay import RECEIVED_EVENT, HashRelay
from istio_burst.frontend.page.hosts import AllowedHosts
from istio_burst.frontend.page.pages import MAX_MESSAGE_BYTES, Pages, create_socket_server
from istio_burst.frontend.page.socket_guard import socket_guard
from istio_burst.frontend.page.watcher_state import WatcherStateFeed
from istio_burst.frontend.replicas.membership import Membership
from istio_burst.frontend.replicas.share import ReplicaShare
from istio_burst.frontend.replicas.shared_frequency import SharedFrequency
from istio_burst.frontend.replicas.subscription import RedisSubscription
from istio_burst.frontend.settings import FrontendSettings

log = logging.getLogger(__name__)

STATS_INTERVAL = 1.0

# Everything the page loads is served from here; the socket connects back to the same origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def create_app(settings: FrontendSettings) -> Any:
    """The ASGI app; raises AssetsMissingError when the npm-built assets are not there."""
    check_assets()
    page = render_page(settings)
    client = create_client(settings.redis_url)
    subscription = RedisSubscription(settings.redis_url)

    driver = LoadDriver(
        settings.processor_url,
        timeout=settings.request_timeout,
        max_in_flight=settings.max_in_flight,
    )
    shared = SharedFrequency(client, settings.channel, subscription, initial=settings.frequency)
    membership = Membership(client, settings.channel)
    share = ReplicaShare(shared, membership, driver)

    hosts = AllowedHosts(settings.hosts)
    sio = create_socket_server(hosts.origin_check(settings.origins))
    relay = HashRelay(sio, window=settings.batch_window, per_batch=settings.hashes_per_batch)
    subscription.on_message(settings.channel, relay.published)
    sio.on(RECEIVED_EVENT, relay.received)
    pages = Pages(
        sio,
        shared,
        settings.max_frequency,
        events_per_second=settings.frequency_events_per_second,
        on_join=relay.add_page,
        on_leave=relay.remove_page,
    )
    watcher = WatcherStateFeed(client, subscription, pages.set_watcher)

    async def publish_stats() -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            redis = RedisStatus(up=subscription.up, reason=subscription.reason)
            await pages.set_stats(share.stats(driver.snapshot(), pages.count, redis))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stats = BackgroundTasks()
        driver.start()
        parts = (relay, pages, shared, membership, subscription)
        for part in parts:
            part.start()
        stats.start(publish_stats(), "stats")
        reason = await ping_reason(client)
        if reason:
            log.warning(
                "redis not reachable at start; readiness answers 503 until it is",
                extra={"reason": reason},
            )
        yield
        # What feeds the page first, then the reverse of the start order: membership leaves
        # before the shared frequency and the driver stop, so the others take over our share at
        # once.
        for running in (stats, watcher, *reversed(parts)):
            await running.stop()
        await driver.stop(grace=settings.graceful_timeout)
        with contextlib.suppress(Exception):
            await client.aclose()

    app = FastAPI(
        title="String Hashr frontend",
        version="1.0",
        lifespan=lifespan,
        default_response_class=JSONBytesResponse,
    )
    install_error_handlers(app)

    @app.get("/", response_class=HTMLResponse, summary="The page (also the liveness probe)")
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    @app.get("/_healthz", summary="Readiness: 200 while Redis answers and F is loaded")
    async def readiness() -> Response:
        reason = await ping_reason(client) or share.not_ready_reason()
        return readiness_response(reason)

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    guarded = socket_guard(
        socketio.ASGIApp(sio, other_asgi_app=app),
        MAX_MESSAGE_BYTES,
        settings.frequency_events_per_second,
    )
    return hosts.guard(guarded)
