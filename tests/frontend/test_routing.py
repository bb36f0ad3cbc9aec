"""The frontend routes nothing: one PROCESSOR_URL, and the weights shown are the watcher's.

The data plane (HAProxy locally, the Istio VirtualService in Kubernetes) splits the requests; the
page's `routing` event is the weights the watcher reports in its state on Redis, with who applies
them, and says plainly when no watcher has reported yet.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import redis

from harness.frontend import Page
from harness.metrics import metric_value
from istio_burst.core.contracts import (
    FRONTEND_REQUESTS_METRIC,
    WATCHER_STATE_CHANNEL,
    WATCHER_STATE_KEY,
    Action,
    Reason,
    WatcherState,
)
from tests.frontend.conftest import PageStack


def watcher_state(primary: int, burst: int, actuator: str = "haproxy") -> dict[str, Any]:
    """As the watcher publishes it: its own model, as JSON."""
    return WatcherState(
        reading=42.0,
        weights={"primary": primary, "burst": burst},
        decision=Action.TO_BURST,
        reason=Reason.ABOVE_HIGH,
        at=1732467012.5,
        ready=True,
        actuator=actuator,
        target="backend workers" if actuator == "haproxy" else "virtualservice default/vs",
    ).as_dict()


def publish_state(client: redis.Redis, payload: bytes) -> None:
    """As the watcher does: the key for whoever starts later, the channel for who is running."""
    client.set(WATCHER_STATE_KEY, payload)
    client.publish(WATCHER_STATE_CHANNEL, payload)


async def test_before_any_watcher_state_the_weights_are_not_claimed(
    page_stack: PageStack,
) -> None:
    async with Page(page_stack.url) as page:
        assert await page.wait_for("routing") == {"reported": False}
        assert await page.wait_for("watcher") == {"state": None}


async def test_the_routing_shown_is_what_the_watcher_reports(page_stack: PageStack) -> None:
    async with Page(page_stack.url) as page:
        await page.wait_for("routing")
        publish_state(page_stack.client, orjson.dumps(watcher_state(30, 70)))
        routing = await page.wait_for("routing", lambda r: r["reported"])
        assert routing == {
            "reported": True,
            "primary": 30,
            "burst": 70,
            "actuator": "haproxy",
            "target": "backend workers",
            "dry_run": False,
            "at": 1732467012.5,
            "routing": None,  # no report on whether it is in force
        }
        since = page.mark()
        publish_state(page_stack.client, orjson.dumps(watcher_state(0, 100, "istio")))
        routing = await page.wait_for("routing", since=since)
        assert (routing["primary"], routing["burst"], routing["actuator"]) == (0, 100, "istio")
        since = page.mark()
        pending = {"target": "httproute default/worker-route", "state": "pending", "detail": ""}
        state = {**watcher_state(0, 100, "gateway-api"), "routing": pending}
        publish_state(page_stack.client, orjson.dumps(state))
        routing = await page.wait_for("routing", since=since)
        assert routing["routing"] == pending, "the page is told the write is not yet in force"
        publish_state(page_stack.client, orjson.dumps(watcher_state(0, 100, "istio")))
    # A page opened later reads the state from its key.
    async with Page(page_stack.url) as late:
        routing = await late.wait_for("routing")
        assert (routing["primary"], routing["burst"], routing["actuator"]) == (0, 100, "istio")
        assert (await late.wait_for("watcher"))["state"] == watcher_state(0, 100, "istio")


async def test_requests_go_to_the_one_url_whatever_the_weights(page_stack: PageStack) -> None:
    publish_state(page_stack.client, orjson.dumps(watcher_state(0, 100)))
    async with Page(page_stack.url) as page:
        assert (await page.wait_for("routing", lambda r: r["reported"]))["burst"] == 100
        await page.set_frequency(30)
        await page.wait_for("hashes")
        since = page.mark()
        await asyncio.sleep(1.0)
        clusters = {h["cluster"] for h in page.hashes(since)}
        await page.set_frequency(0)
    # The frontend does not split: the one worker behind PROCESSOR_URL (primary) served them all.
    assert clusters == {"primary"}
    assert metric_value(page_stack.url, FRONTEND_REQUESTS_METRIC, target="default", outcome="ok")


async def test_a_state_breaking_the_contract_is_ignored(page_stack: PageStack) -> None:
    client = page_stack.client
    async with Page(page_stack.url) as page:
        await page.wait_for("routing")
        client.publish(WATCHER_STATE_CHANNEL, orjson.dumps(watcher_state(70, 70)))
        client.publish(WATCHER_STATE_CHANNEL, b"not json")
        client.publish(WATCHER_STATE_CHANNEL, b'{"actuator": "istio"}')
        since = page.mark()
        client.publish(WATCHER_STATE_CHANNEL, orjson.dumps(watcher_state(20, 80)))
        routing = await page.wait_for("routing", since=since)
        assert (routing["primary"], routing["burst"]) == (20, 80)
        bad_routing = [
            e for e in page.events if e.name == "routing" and e.data.get("primary") == 70
        ]
        assert not bad_routing
    assert metric_value(page_stack.url, "hashr_frontend_bad_messages_total") == 3
