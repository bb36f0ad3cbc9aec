"""The page's Watcher card in real Chromium, fed by a real watcher on a real HAProxy: what goes
wrong is said in words, from the kinds the watcher reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.browser import artifact, chromium
from harness.exporter import LoadExporter
from harness.frontend import start_frontend
from harness.haproxy import HAProxyServer
from harness.prometheus import PrometheusServer
from harness.redis_server import RedisServer
from harness.watcher import start_watcher, wait_status


@pytest.mark.browser
async def test_haproxy_killed_is_named_on_the_card_and_in_status(
    tmp_path: Path,
    load: LoadExporter,
    prometheus: PrometheusServer,
    proxy: HAProxyServer,
    own_redis: RedisServer,
) -> None:
    load.set_rate(3)
    watcher, watcher_url = start_watcher(
        tmp_path,
        prometheus.url,
        ACTUATOR="haproxy",
        HAPROXY_RUNTIME_API=proxy.runtime_api,
        REDIS_URL=own_redis.url,
        MAX_BACKOFF="1",
    )
    frontend, url = start_frontend(own_redis, tmp_path, proxy.url)
    try:
        wait_status(watcher, watcher_url, lambda s: s["ready"])
        async with chromium() as browser:
            screen = await browser.new_page()
            await screen.goto(url)
            await screen.wait_for_selector("#watcher >> text=below_low", timeout=20_000)
            assert await screen.locator("#watcher-problems").is_hidden()

            proxy.kill()
            down = wait_status(watcher, watcher_url, lambda s: s["actuator_error_kind"] is not None)
            assert down["actuator_error_kind"] == "unreachable"
            problems = screen.locator("#watcher-problems")
            await problems.get_by_text("cannot reach haproxy backend workers").wait_for(
                timeout=20_000
            )
            assert "cannot reach the runtime API" in await problems.inner_text()
            await screen.screenshot(path=artifact("watcher-card-haproxy-killed.png"))

            proxy.start()
            await problems.wait_for(state="hidden", timeout=30_000)
    finally:
        frontend.stop()
        watcher.stop()
