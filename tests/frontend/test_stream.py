"""The main flow through the real `istio-burst frontend`: set a frequency, hashes stream in."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
import socketio

from harness.frontend import Page, Stack
from istio_burst.core.contracts import FRONTEND_REQUESTS_METRIC

HASH = re.compile(r"[A-Za-z0-9+/]{43}=")


async def test_a_new_page_is_told_the_current_state(stack: Stack) -> None:
    async with Page(stack.url) as page:
        frequency = await page.wait_for("frequency")
        routing = await page.wait_for("routing")
        watcher = await page.wait_for("watcher")
    assert frequency == {"freq": 0, "max": 100, "shared": True}
    # What the routing event says is tested in test_routing.py, on a Redis of its own.
    assert "reported" in routing
    assert "state" in watcher


async def test_frequency_sets_the_hash_rate_for_every_page_and_zero_stops_it(
    stack: Stack,
) -> None:
    sent_before = stack.metric(FRONTEND_REQUESTS_METRIC, target="default", outcome="ok")
    async with Page(stack.url) as page, Page(stack.url) as other:
        await page.set_frequency(20)
        # The other page's slider moves too, and a page opened now starts at 20.
        await other.wait_for("frequency", lambda d: d["freq"] == 20)
        async with Page(stack.url) as late:
            assert (await late.wait_for("frequency"))["freq"] == 20

        await page.wait_for("hashes")
        rate = await page.hash_rate(3.0)
        assert 14 <= rate <= 26, f"asked for 20 hashes/s, got {rate:.1f}"
        assert other.hash_count() > 0

        shown = page.hashes()
        assert all(HASH.fullmatch(h["value"]) for h in shown)
        assert {h["cluster"] for h in shown} == {"primary"}
        assert all(isinstance(h["published_at"], float) for h in shown)

        await page.set_frequency(0)
        await asyncio.sleep(0.5)  # requests already sent may still publish
        quiet_from = page.mark()
        await asyncio.sleep(1.5)
        assert page.hash_count(since=quiet_from) == 0, "hashes still arrive at frequency 0"

    sent = stack.metric(FRONTEND_REQUESTS_METRIC, target="default", outcome="ok") - sent_before
    assert sent >= 40, f"only {sent} requests counted as ok"


async def test_a_new_frequency_applies_within_one_new_period(stack: Stack) -> None:
    async with Page(stack.url) as page:
        # One request every 5 s; the first within one period of the last request (anchored).
        await page.set_frequency(0.2)
        await page.wait_for("hashes", timeout=12.0)
        changed = page.mark()
        await page.set_frequency(25)
        # Not after the 5 s the old period still had to run: well within a second.
        await page.wait_for("hashes", since=changed, timeout=2.0)
        await page.set_frequency(0)


async def test_the_page_its_assets_and_the_probes(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=5) as http:
        page = await http.get("/")
        assert page.status_code == 200
        html = page.text
        assert "<title>String Hashr</title>" in html
        assert "String Hashr!" in html and "Lets hash some things!" in html
        assert "https://" not in html and "http://" not in html, "the page loads from elsewhere"
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
        assert len(assets) >= 4
        for asset in assets:
            response = await http.get(asset)
            assert response.status_code == 200, asset
            assert len(response.content) > 100, asset

        ready = await http.get("/_healthz")
        assert ready.status_code == 200 and ready.json() == {"status": "ok"}
        metrics = (await http.get("/metrics")).text
        for name in (
            "hashr_frontend_requests_in_flight",
            "hashr_frontend_connected_pages",
            "hashr_frontend_achieved_rate",
            "hashr_frontend_end_to_end_seconds_bucket",
        ):
            assert name in metrics


async def test_a_page_from_another_origin_is_refused(stack: Stack) -> None:
    foreign = Page(stack.url, headers={"Origin": "http://evil.example"})
    with pytest.raises(socketio.exceptions.ConnectionError):
        await foreign.connect()
    async with Page(stack.url, headers={"Origin": stack.url}) as same_origin:
        assert (await same_origin.wait_for("frequency"))["max"] == 100
