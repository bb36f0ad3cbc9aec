"""The page's Watcher card in real Chromium, fed by a real watcher on a real HAProxy: what goes
wrong is said in words, from the kinds the watcher reports; the chart shows the reading with the
thresholds, a marker at each decision and a band while an override is in force, and the list the
last decisions in words. Screenshots go to test-artifacts/ (and the test's tmp dir)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.browser import artifact, chromium
from harness.exporter import LoadExporter
from harness.frontend import start_frontend
from harness.haproxy import HAProxyServer
from harness.processes import ManagedProcess
from harness.redis_server import RedisServer
from harness.watcher import StartWatcher, wait_status, watcher_cli


@dataclass
class Card:
    watcher: ManagedProcess
    watcher_url: str
    url: str  # the frontend's page


@pytest.fixture
def card(
    tmp_path: Path,
    load: LoadExporter,
    proxy: HAProxyServer,
    own_redis: RedisServer,
    haproxy_watcher: StartWatcher,
) -> Iterator[Card]:
    """A local watcher on HAProxy at 3 req/s, ready, and a frontend showing it (same Redis)."""
    load.set_rate(3)
    watcher, watcher_url = haproxy_watcher(MAX_BACKOFF="1")
    frontend, url = start_frontend(own_redis, tmp_path, proxy.url)
    try:
        wait_status(watcher, watcher_url, lambda s: s["ready"])
        yield Card(watcher, watcher_url, url)
    finally:
        frontend.stop()


@pytest.mark.browser
async def test_haproxy_killed_is_named_on_the_card_and_in_status(
    card: Card, proxy: HAProxyServer
) -> None:
    async with chromium() as browser:
        screen = await browser.new_page()
        await screen.goto(card.url)
        await screen.wait_for_selector("#watcher >> text=below_low", timeout=20_000)
        assert await screen.locator("#watcher-problems").is_hidden()

        proxy.kill()
        down = wait_status(
            card.watcher, card.watcher_url, lambda s: s["actuator_error_kind"] is not None
        )
        assert down["actuator_error_kind"] == "unreachable"
        problems = screen.locator("#watcher-problems")
        await problems.get_by_text("cannot reach haproxy backend workers").wait_for(timeout=20_000)
        assert "cannot reach the runtime API" in await problems.inner_text()
        await screen.screenshot(path=artifact("watcher-card-haproxy-killed.png"))

        proxy.start()
        await problems.wait_for(state="hidden", timeout=30_000)


CHART = """() => {
  const chart = Chart.getChart("watcher-chart");
  const byLabel = Object.fromEntries(chart.data.datasets.map((d) => [d.label, d.data]));
  return {
    high: (byLabel["HIGH"] || []).map((p) => p.y),
    low: (byLabel["LOW"] || []).map((p) => p.y),
    readings: (byLabel["reading (req/s)"] || []).filter((p) => p.y !== null).length,
    markers: (byLabel["decisions"] || []).map((p) => p.reason),
    bands: (chart.$bands || []).map((b) => b.band),
  };
}"""


async def chart_of(screen: Any) -> dict[str, Any]:
    result: dict[str, Any] = await screen.evaluate(CHART)
    return result


@pytest.mark.browser
async def test_the_card_charts_the_reading_thresholds_decisions_and_override_bands(
    card: Card, tmp_path: Path, load: LoadExporter, own_redis: RedisServer
) -> None:
    async with chromium() as browser:
        screen = await browser.new_page(viewport={"width": 1400, "height": 1100})
        await screen.goto(card.url)
        await screen.wait_for_function(
            "() => Chart.getChart('watcher-chart').data.datasets[0].data.length >= 3",
            timeout=20_000,
        )
        chart = await chart_of(screen)
        assert set(chart["high"]) == {15} and set(chart["low"]) == {10}, chart

        decisions = screen.locator("#decisions")
        load.set_rate(30)
        await decisions.locator("[data-reason=BurstStarted]").wait_for(timeout=30_000)
        load.set_rate(3)
        ended = decisions.locator("[data-reason=BurstEnded]")
        await ended.wait_for(timeout=40_000)
        assert "burst ended:" in await ended.inner_text()
        assert "0/100 → 100/0, written" in await ended.inner_text()
        started = await decisions.locator("[data-reason=BurstStarted]").inner_text()
        assert "burst started: " in started and "above HIGH 15" in started
        chart = await chart_of(screen)
        assert chart["markers"][-2:] == ["BurstStarted", "BurstEnded"], chart
        assert chart["readings"] >= 10
        await screen.screenshot(path=artifact("watcher-card-3-30-3.png"), full_page=True)
        await screen.screenshot(path=tmp_path / "watcher-card-3-30-3.png", full_page=True)

        override = watcher_cli("override", "burst", "--for=10s", f"--redis-url={own_redis.url}")
        assert override.returncode == 0, override.stderr
        assert "override burst until" in override.stdout
        await decisions.locator("[data-reason=OverrideApplied]").wait_for(timeout=20_000)
        await screen.wait_for_function(
            "() => (Chart.getChart('watcher-chart').$bands || [])"
            ".some((band) => band.to - band.from >= 3)",
            timeout=20_000,
        )
        bands = await screen.locator("#watcher-bands").inner_text()
        assert bands.startswith("Shaded: override from"), bands
        assert (await chart_of(screen))["bands"] == ["override"]
        await screen.screenshot(path=artifact("watcher-card-override.png"), full_page=True)
        await screen.screenshot(path=tmp_path / "watcher-card-override.png", full_page=True)
        await decisions.locator("[data-reason=OverrideExpired]").wait_for(timeout=30_000)
