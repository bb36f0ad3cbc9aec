"""The page in real headless Chromium (Debian's, driven by Playwright; nothing is downloaded)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
import redis
from playwright.async_api import Page as BrowserPage

from harness.browser import artifact, chromium
from harness.kube import LocalKube
from harness.kube.front import KubeFront, virtual_service
from harness.watcher import start_watcher, wait_status
from istio_burst.core.contracts import (
    WATCHER_STATE_CHANNEL,
    WATCHER_STATE_KEY,
    Action,
    HashMessage,
    Mode,
    ReadingKind,
    Reason,
    WatcherState,
)
from tests.frontend.conftest import PageStack
from tests.watcher.fake_http import Answer, ScriptedServer, vector
from tests.watcher.gateway_cluster import PlayedController, gateway_api_namespace

# What the watcher publishes, built with its own model.
WATCHER_STATE = WatcherState(
    reading=38.7,
    reading_kind=ReadingKind.NUMBER,
    weights={"primary": 50, "burst": 50},
    mode=Mode.OVERFLOW,
    decision=Action.MORE_BURST,
    reason=Reason.OVER_CAPACITY,
    at=1795545931.5,
    ready=True,
    actuator="haproxy",
    target="backend workers",
    not_ready_reason="",
    thresholds={"high": 15.0, "low": 10.0},
    burst_health={"healthy": True, "detail": ""},
).as_dict()

# The chart moves: a few seconds of points from each side have scrolled in.
CHART_HAS_BOTH_SIDES = """() => {
  const chart = Chart.getChart("rate-chart");
  const points = (label) => chart.data.datasets
    .filter((d) => d.label === label)
    .reduce((n, d) => n + d.data.filter((v) => v > 0).length, 0);
  return points("primary") >= 3 && points("burst") >= 3;
}"""


@contextlib.asynccontextmanager
async def burst_hashes(client: redis.Redis, channel: str, rate: float) -> AsyncIterator[None]:
    """Hashes from a burst worker on the channel, as a data plane sending it half would give."""

    async def publish() -> None:
        while True:
            message = HashMessage("bursty-" + "b" * 43 + "=", "burst", "burst-1", time.time())
            await asyncio.to_thread(client.publish, channel, message.encode())
            await asyncio.sleep(1 / rate)

    task = asyncio.create_task(publish())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def aria_value(page: BrowserPage, selector: str) -> str | None:
    return await page.get_attribute(selector, "aria-valuenow")


@pytest.mark.browser
async def test_the_page_in_a_real_browser(page_stack: PageStack) -> None:
    state = orjson.dumps(WATCHER_STATE)
    page_stack.client.set(WATCHER_STATE_KEY, state)
    page_stack.client.publish(WATCHER_STATE_CHANNEL, state)

    problems: list[str] = []
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 1100})
        page.on(
            "console",
            lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        await page.goto(page_stack.url)
        assert await page.title() == "String Hashr"
        await page.wait_for_selector("#connection[data-state=success]", timeout=10_000)
        await page.wait_for_selector("#routing-text >> text=applied by HAProxy", timeout=10_000)
        assert "primary 50 % / burst 50 %" in await page.inner_text("#routing-text")
        assert await aria_value(page, "#weight-primary") == "50"
        assert await aria_value(page, "#weight-burst") == "50"
        await page.wait_for_selector("#watcher >> text=more_burst", timeout=10_000)

        # Move the slider by clicking two fifths along it: about 40 requests/s.
        slider = page.locator("#freq-range")
        box = await slider.bounding_box()
        assert box is not None
        await page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] / 2)
        chosen = float(await page.input_value("#freq-number"))
        assert 20 <= chosen <= 60, f"the number beside the slider shows {chosen}"

        # The primary worker answers the driver; burst hashes arrive as well, at about 10/s.
        async with burst_hashes(page_stack.client, page_stack.channel, 10):
            await page.wait_for_selector("#hashes li.hash-primary", timeout=10_000)
            await page.wait_for_selector("#hashes li.hash-burst", timeout=10_000)
            await page.wait_for_function(CHART_HAS_BOTH_SIDES, timeout=10_000)
            await page.wait_for_selector("text=/sending [0-9.]+ of/", timeout=10_000)
            # Mostly primary (about 40 of 50 a second): the split measured from the hashes.
            await page.wait_for_function(
                """() => /primary ([6-9][0-9]) % · burst ([1-3][0-9]) %/.test(
                     document.getElementById("measured-split").textContent)""",
                timeout=10_000,
            )
        burst_item = await page.inner_text("#hashes li.hash-burst >> nth=0")
        assert "bursty-" in burst_item and "burst" in burst_item

        # A refused value shows an error and leaves the slider where it was.
        await page.fill("#freq-number", "5000")
        await page.press("#freq-number", "Enter")
        error = page.locator("#freq-error")
        await error.wait_for(state="visible", timeout=5_000)
        assert "maximum" in await error.inner_text()
        assert float(await page.input_value("#freq-range")) == chosen

        shot = artifact("frontend-page.png")
        await page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")

        assert not problems, f"the browser reported: {problems}"

        # The frontend goes away: the page says so, and reconnects by itself when it is back.
        page_stack.processes[-1].stop()
        await page.wait_for_selector("#connection[data-state=danger]", timeout=10_000)
        page_stack.restart_frontend()
        await page.wait_for_selector("#connection[data-state=success]", timeout=20_000)
        # The new process starts at the deployment's frequency (kept in Redis), not at 0.
        await page.wait_for_selector(
            f"#driver-summary >> text=/sending [0-9.]+ of {chosen:g} requests/", timeout=10_000
        )
        assert float(await page.input_value("#freq-range")) == chosen


@pytest.fixture
def mesh(local_kube: LocalKube) -> Iterator[tuple[KubeFront, ScriptedServer]]:
    """The real Kubernetes API with the worker VirtualService at 100/0, and a Prometheus
    whose answer the test sets (3 req/s to begin with)."""
    kube, prom = KubeFront(local_kube), ScriptedServer()
    prom.answer = Answer(200, vector("3"))
    with contextlib.ExitStack() as stack:
        stack.callback(kube.start().stop)
        kube.put(virtual_service(100, 0))
        stack.callback(prom.start().stop)
        yield kube, prom


@pytest.mark.browser
async def test_the_routing_card_shows_the_virtual_service_weights(
    page_stack: PageStack, mesh: tuple[KubeFront, ScriptedServer], tmp_path: Path
) -> None:
    """Kubernetes as the page sees it: the watcher patches the VirtualService (on the real API
    server), publishes its state on Redis, and the frontend has one PROCESSOR_URL."""
    kube, prom = mesh
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 1100})
        await page.goto(page_stack.url)
        await page.wait_for_selector("#connection[data-state=success]", timeout=10_000)
        # No watcher yet: the card says so, and no weight is shown as if it were known.
        await page.wait_for_selector(
            "#routing-text >> text=no watcher has reported yet", timeout=10_000
        )
        assert await aria_value(page, "#weight-primary") is None
        assert await aria_value(page, "#weight-burst") is None

        proc, url = start_watcher(
            tmp_path,
            prom.url,
            ACTUATOR="istio",
            KUBECONFIG=str(kube.kubeconfig(tmp_path / "kubeconfig")),
            NAMESPACE=kube.namespace,
            REDIS_URL=page_stack.redis_url,
        )
        try:
            await asyncio.to_thread(wait_status, proc, url, lambda s: s["ready"])
            await page.wait_for_selector(
                "#routing-text >> text=applied by the Istio VirtualService", timeout=10_000
            )
            assert await aria_value(page, "#weight-primary") == "100"

            prom.answer = Answer(200, vector("30"))  # a burst of load, as the sidecars count it
            await asyncio.to_thread(wait_status, proc, url, lambda s: s["weights"]["burst"] == 100)
            assert kube.weights() == (0, 100)
            await page.wait_for_function(
                """() => document.getElementById("weight-burst")
                           .getAttribute("aria-valuenow") === "100" """,
                timeout=10_000,
            )
            assert await aria_value(page, "#weight-primary") == "0"
            text = await page.inner_text("#routing-text")
            assert "primary 0 % / burst 100 %" in text
            assert kube.target in text
        finally:
            proc.stop()
        shot = artifact("frontend-routing-istio.png")
        await page.screenshot(path=str(shot), full_page=True)


@pytest.mark.browser
async def test_the_routing_card_shows_an_httproute_pending_until_accepted(
    page_stack: PageStack, local_kube: LocalKube, tmp_path: Path
) -> None:
    """Istio ambient as the page sees it: the watcher (ACTUATOR=gateway-api, its own process)
    patches the HTTPRoute on the real API server; the card names the route and says `pending`
    until the gateway controller (played by the test) has accepted the new generation."""
    prom = ScriptedServer()
    prom.answer = Answer(200, vector("3"))
    with contextlib.ExitStack() as stack:
        stack.callback(prom.start().stop)
        cluster = stack.enter_context(gateway_api_namespace(local_kube))
        controller = PlayedController(cluster)
        controller.report()
        kubeconfig = local_kube.service_account_kubeconfig(
            cluster.namespace, "istiowatcher", tmp_path / "watcher-kubeconfig"
        )
        proc, url = start_watcher(
            tmp_path,
            prom.url,
            ACTUATOR="gateway-api",
            KUBECONFIG=str(kubeconfig),
            NAMESPACE=cluster.namespace,
            REDIS_URL=page_stack.redis_url,
            ACCEPTANCE_DEADLINE="600",
        )
        stack.callback(proc.stop)
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 1100})
            await page.goto(page_stack.url)
            await asyncio.to_thread(wait_status, proc, url, lambda s: s["ready"])
            await page.wait_for_selector(
                "#routing-text >> text=applied by the Gateway API HTTPRoute", timeout=10_000
            )
            route = f"httproute {cluster.namespace}/worker-route"
            assert route in await page.inner_text("#routing-text")
            await page.wait_for_selector("#routing-acceptance[data-state=applied]")

            prom.answer = Answer(200, vector("30"))
            await asyncio.to_thread(wait_status, proc, url, lambda s: s["weights"]["burst"] == 100)
            assert cluster.weights() == (0, 100)
            await page.wait_for_selector("#routing-acceptance[data-state=pending]", timeout=10_000)
            assert "pending" in await page.inner_text("#routing-acceptance")
            shot = artifact("frontend-routing-gateway-api-pending.png")
            await page.screenshot(path=str(shot), full_page=True)

            controller.report()  # the controller accepts the new generation
            await page.wait_for_selector("#routing-acceptance[data-state=applied]", timeout=10_000)
            assert "accepted by the data plane" in await page.inner_text("#routing-acceptance")
