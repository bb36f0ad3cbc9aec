"""The page in real headless Chromium (Debian's, driven by Playwright; nothing is downloaded)."""

from __future__ import annotations

import orjson
import pytest

from istio_burst.core.contracts import (
    ROUTING_CHANNEL,
    ROUTING_KEY,
    WATCHER_STATE_CHANNEL,
    WATCHER_STATE_KEY,
    Weights,
)
from tests.frontend.conftest import SplitStack
from tests.support.browser import artifact, chromium

# Shaped like what the watcher publishes: the main keys and a few of its others.
WATCHER_STATE = {
    "reading": 38.7,
    "reading_kind": "value",
    "weights": {"primary": 50, "burst": 50},
    "mode": "overflow",
    "decision": "more_burst",
    "reason": "above_threshold",
    "at": 1795545931.5,
    "ready": True,
    "actuator": "local",
    "not_ready_reason": "",
    "thresholds": {"high": 15.0, "low": 10.0},
    "burst_health": {"healthy": True, "detail": ""},
    "last_change": None,
}

# The chart moves: a few seconds of points from each side have scrolled in.
CHART_HAS_BOTH_SIDES = """() => {
  const chart = Chart.getChart("rate-chart");
  const points = (label) => chart.data.datasets
    .filter((d) => d.label === label)
    .reduce((n, d) => n + d.data.filter((v) => v > 0).length, 0);
  return points("primary") >= 3 && points("burst") >= 3;
}"""


@pytest.mark.browser
async def test_the_page_in_a_real_browser(split_stack: SplitStack) -> None:
    weights = Weights(50, 50).encode()
    split_stack.client.set(ROUTING_KEY, weights)
    split_stack.client.publish(ROUTING_CHANNEL, weights)
    split_stack.client.set(WATCHER_STATE_KEY, orjson.dumps(WATCHER_STATE))
    split_stack.client.publish(WATCHER_STATE_CHANNEL, orjson.dumps(WATCHER_STATE))

    problems: list[str] = []
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 1100})
        page.on(
            "console",
            lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        await page.goto(split_stack.url)
        assert await page.title() == "String Hashr"
        await page.wait_for_selector("#connection[data-state=success]", timeout=10_000)
        await page.wait_for_selector("text=primary 50 % / burst 50 %", timeout=10_000)
        await page.wait_for_selector("#watcher >> text=more_burst", timeout=10_000)

        # Move the slider by clicking two fifths along it: about 40 requests/s.
        slider = page.locator("#freq-range")
        box = await slider.bounding_box()
        assert box is not None
        await page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] / 2)
        chosen = float(await page.input_value("#freq-number"))
        assert 20 <= chosen <= 60, f"the number beside the slider shows {chosen}"

        await page.wait_for_selector("#hashes li.hash-primary", timeout=10_000)
        await page.wait_for_selector("#hashes li.hash-burst", timeout=10_000)
        await page.wait_for_function(CHART_HAS_BOTH_SIDES, timeout=10_000)
        await page.wait_for_selector("text=/sending [0-9.]+ of/", timeout=10_000)
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
        split_stack.processes[-1].stop()
        await page.wait_for_selector("#connection[data-state=danger]", timeout=10_000)
        split_stack.restart_frontend()
        await page.wait_for_selector("#connection[data-state=success]", timeout=20_000)
        # The new process starts at the deployment's frequency (kept in Redis), not at 0.
        await page.wait_for_selector(
            f"#driver-summary >> text=/sending [0-9.]+ of {chosen:g} requests/", timeout=10_000
        )
        assert float(await page.input_value("#freq-range")) == chosen
