"""The frontend as one ASGI app: socket.io in front, FastAPI (page, probes, metrics) behind it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jinja2
import socketio
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from istio_burst.core.http_errors import (
    JSONBytesResponse,
    install_error_handlers,
    readiness_response,
)
from istio_burst.core.metrics import metrics_endpoint
from istio_burst.core.redis import create_client, ping_reason
from istio_burst.frontend.load.driver import LoadDriver
from istio_burst.frontend.page.assets import STATIC_DIR, TEMPLATES_DIR, check_assets
from istio_burst.frontend.page.hash_relay import RECEIVED_EVENT, HashRelay
from istio_burst.frontend.page.hosts import AllowedHosts
from istio_burst.frontend.page.pages import (
    MAX_MESSAGE_BYTES,
    Pages,
    create_socket_server,
)
from istio_burst.frontend.page.socket_guard import socket_guard
from istio_burst.frontend.replicas.redis_feed import RedisFeed
from istio_burst.frontend.replicas.share import ScaleOut
from istio_burst.frontend.settings import FrontendSettings

log = logging.getLogger(__name__)

STATS_INTERVAL = 1.0
# The page measures the primary/burst split over this many seconds of received hashes.
MEASURED_SPLIT_SECONDS = 10

# Everything the page loads is served from here; the socket connects back to the same origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def render_page(settings: FrontendSettings) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["shortnum"] = lambda number: f"{number:g}"  # 100.0 -> 100
    return env.get_template("index.html").render(
        max_frequency=settings.max_frequency,
        frequency=settings.frequency,
        split_seconds=MEASURED_SPLIT_SECONDS,
    )


def create_app(settings: FrontendSettings) -> Any:
    """The ASGI app; raises AssetsMissingError when the npm-built assets are not there."""
    check_assets()
    page = render_page(settings)
    client = create_client(settings.redis_url)
    driver = LoadDriver(
        settings.target_url, timeout=settings.request_timeout, max_in_flight=settings.max_in_flight
    )
    hosts = AllowedHosts(settings.hosts)
    sio = create_socket_server(hosts.origin_check(settings.origins))
    relay = HashRelay(
        sio,
        window=settings.batch_window,
        per_batch=settings.hashes_per_batch,
    )
    sio.on(RECEIVED_EVENT, relay.received)
    # The pages are told of every change of the shared frequency (`pages` is bound just below).
    scale = ScaleOut(settings, client, driver, announce=lambda: pages.announce_frequency())  # noqa: PLW0108
    pages = Pages(
        sio,
        scale.shared,
        settings.max_frequency,
        events_per_second=settings.frequency_events_per_second,
        on_join=relay.add_page,
        on_leave=relay.remove_page,
    )
    feed = RedisFeed(settings.redis_url, client, settings.channel, relay=relay, pages=pages)

    async def publish_stats() -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            await pages.set_stats(
                {
                    **scale.stats(driver.snapshot(), pages.count),
                    "redis": {"up": feed.up, "reason": feed.reason},
                }
            )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        driver.start()
        relay.start()
        scale.start()
        tasks = [
            asyncio.create_task(feed.run(), name="redis-feed"),
            asyncio.create_task(publish_stats(), name="stats"),
        ]
        reason = await ping_reason(client)
        if reason:
            log.warning(
                "redis not reachable at start; readiness answers 503 until it is",
                extra={"reason": reason},
            )
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await scale.stop()
        await relay.stop()
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
        reason = await ping_reason(client) or scale.not_ready_reason()
        return readiness_response(reason)

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return hosts.guard(
        socket_guard(
            socketio.ASGIApp(sio, other_asgi_app=app),
            MAX_MESSAGE_BYTES,
            settings.frequency_events_per_second,
        )
    )
