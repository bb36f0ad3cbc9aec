"""PROCESSOR_URL=primary=…,burst=…: requests follow the weights the watcher writes in Redis."""

from __future__ import annotations

import asyncio

import orjson
import redis

from istio_burst.core.contracts import (
    FRONTEND_REQUESTS_METRIC,
    ROUTING_CHANNEL,
    ROUTING_KEY,
    WATCHER_STATE_CHANNEL,
    WATCHER_STATE_KEY,
    Weights,
)
from tests.frontend.conftest import SplitStack
from tests.support.frontend import Page
from tests.support.metrics import metric_value


def publish(client: redis.Redis, key: str, channel: str, payload: bytes) -> None:
    """As the watcher does: the key for whoever starts later, the channel for who is running."""
    client.set(key, payload)
    client.publish(channel, payload)


async def hashes_after(page: Page, seconds: float) -> list[str]:
    """The hash values shown over the next `seconds`."""
    since = page.mark()
    await asyncio.sleep(seconds)
    return [h["value"] for h in page.hashes(since)]


async def test_requests_follow_the_published_weights(split_stack: SplitStack) -> None:
    client = split_stack.client
    async with Page(split_stack.url) as page:
        # Read from the key at start: everything goes to the burst worker.
        routing = await page.wait_for("routing")
        assert routing == {"primary": 0, "burst": 100, "source": "redis", "applied_by": "frontend"}
        await page.set_frequency(40)
        await page.wait_for("hashes")
        values = await hashes_after(page, 1.0)
        assert values and all(v.startswith("bursty-") for v in values)

        since = page.mark()
        publish(client, ROUTING_KEY, ROUTING_CHANNEL, Weights(100, 0).encode())
        await page.wait_for("routing", lambda r: r["primary"] == 100, since=since)
        await asyncio.sleep(0.3)  # requests already sent to burst may still answer
        values = await hashes_after(page, 1.0)
        assert values and not any(v.startswith("bursty-") for v in values)

        publish(client, ROUTING_KEY, ROUTING_CHANNEL, Weights(50, 50).encode())
        await page.wait_for("routing", lambda r: r["burst"] == 50, since=since)
        values = await hashes_after(page, 1.5)
        bursty = sum(v.startswith("bursty-") for v in values)
        assert 0 < bursty < len(values), f"{bursty} of {len(values)} from burst at 50/50"
        await page.set_frequency(0)

    for target in ("primary", "burst"):
        sent = metric_value(split_stack.url, FRONTEND_REQUESTS_METRIC, target=target, outcome="ok")
        assert sent > 0, f"no ok requests counted for {target}"


async def test_weights_breaking_the_contract_are_ignored(split_stack: SplitStack) -> None:
    async with Page(split_stack.url) as page:
        await page.wait_for("routing")
        split_stack.client.publish(ROUTING_CHANNEL, b'{"primary": 70, "burst": 70}')
        split_stack.client.publish(ROUTING_CHANNEL, b"not json")
        since = page.mark()
        split_stack.client.publish(ROUTING_CHANNEL, Weights(20, 80).encode())
        routing = await page.wait_for("routing", since=since)
        assert (routing["primary"], routing["burst"]) == (20, 80)
    assert metric_value(split_stack.url, "hashr_frontend_bad_messages_total") == 2


async def test_the_watcher_state_reaches_every_page(split_stack: SplitStack) -> None:
    state = {
        "mode": "burst",
        "decision": "switch",
        "reason": "42.0 req/s above 15",
        "reading": 42.0,
        "weights": {"primary": 0, "burst": 100},
        "ready": True,
        "at": 1732467012.5,
    }
    async with Page(split_stack.url) as page:
        first = await page.wait_for("watcher")
        assert first == {"state": None}, "no state was published yet"
        publish(split_stack.client, WATCHER_STATE_KEY, WATCHER_STATE_CHANNEL, orjson.dumps(state))
        assert await page.wait_for("watcher", lambda w: w["state"] is not None) == {"state": state}
    async with Page(split_stack.url) as late:
        assert await late.wait_for("watcher") == {"state": state}
