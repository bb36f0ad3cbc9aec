"""The three images built from the working tree and docker-compose.yml run for real.

Runs whenever a Docker engine is usable (`./run test` starts dockerd as root); skipped where
there is none. A base image that is neither present nor pullable fails the run, naming it.
The tests run in file order against one compose project, and the last one takes it down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.frontend import Page
from tests.containers.compose import OUR_IMAGES, ComposeStack, docker
from tests.containers.conftest import report

pytestmark = pytest.mark.timeout(900)  # the first test builds the images

BURST_WITHIN = 10.0  # seconds from 30 req/s to the first bursty- hash
RESUME_WITHIN = 5.0  # seconds from redis back to hashes flowing again


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    stack = ComposeStack.open()
    try:
        stack.build()
        started = time.monotonic()
        stack.up()
        stack.timings["time to healthy (up -d to all healthy)"] = (
            time.monotonic() - started + stack.wait_healthy()
        )
        yield stack
    finally:
        try:
            stack.down()
        finally:
            report(stack.timings)


def bursty(data: Any) -> bool:
    return any(h["value"].startswith("bursty-") for h in data["hashes"])


def started_at(stack: ComposeStack) -> dict[str, tuple[str, int]]:
    return {
        service: (info["State"]["StartedAt"], info["RestartCount"])
        for service in stack.containers()
        for info in [stack.inspect(service)]
    }


def test_every_service_is_healthy_non_root_and_keeps_no_volume(stack: ComposeStack) -> None:
    health = stack.health()
    assert set(health) >= {
        "redis",
        "prometheus",
        "worker-primary",
        "worker-burst",
        "frontend",
        "istiowatcher",
    }
    assert set(health.values()) == {"healthy"}
    for service in stack.containers():
        info = stack.inspect(service)
        volumes = [m for m in info["Mounts"] if m["Type"] == "volume"]
        assert volumes == [], f"{service} has (anonymous) volumes: {volumes}"
        assert info["HostConfig"]["RestartPolicy"]["Name"] in {"unless-stopped", "always"}
        image = info["Config"]["Image"]
        if image.startswith(OUR_IMAGES):
            assert info["Config"]["User"] == "10001:10001", service
            size = int(docker("image", "inspect", "--format", "{{.Size}}", image))
            stack.timings[f"image {image} (MB)"] = size / 1e6


async def test_slider_through_the_published_port_bursts_and_comes_back(
    stack: ComposeStack,
) -> None:
    watcher_env = stack.config()["services"]["istiowatcher"]["environment"]
    window = float(watcher_env["STABILIZATION_WINDOW"])
    async with Page(stack.url("frontend")) as page:
        await page.set_frequency(3)
        calm = page.mark()
        await page.wait_for("hashes", since=calm, timeout=30)
        await asyncio.sleep(8)  # an observation period: the watcher reacts in ~4 s at most
        assert page.hash_count(since=calm) >= 10, "hashes do not flow at 3 req/s"
        assert not any(bursty(e.data) for e in page.events[calm:] if e.name == "hashes")

        await page.set_frequency(30)
        high = page.mark()
        set_high = time.monotonic()
        await page.wait_for("hashes", bursty, since=high, timeout=BURST_WITHIN)
        stack.timings["30 req/s -> first bursty- hash (s)"] = time.monotonic() - set_high

        await page.set_frequency(3)
        set_low = time.monotonic()
        last_bursty = set_low
        deadline = set_low + window + 10 + 5
        while time.monotonic() < deadline:
            for event in page.events[high:]:
                if event.name == "hashes" and bursty(event.data):
                    last_bursty = max(last_bursty, event.at)
            quiet = [e for e in page.events if e.name == "hashes" and e.at > last_bursty]
            if time.monotonic() - last_bursty >= 4 and len(quiet) >= 3:
                break
            await asyncio.sleep(0.5)
        back_after = last_bursty - set_low
        stack.timings["3 req/s -> last bursty- hash (s)"] = back_after
        assert time.monotonic() - last_bursty >= 4, "still bursting at 3 req/s"
        assert back_after <= window + 10
        await page.set_frequency(0)


async def test_redis_restart_under_load_restarts_nothing_else(stack: ComposeStack) -> None:
    before = started_at(stack)
    async with Page(stack.url("frontend")) as page:
        await page.set_frequency(10)
        await page.wait_for("hashes", since=page.mark(), timeout=30)
        await asyncio.to_thread(stack.compose, "restart", "redis")
        back_wall, back = time.time(), time.monotonic()
        mark = page.mark()
        await page.wait_for(
            "hashes",
            lambda d: any(h["published_at"] >= back_wall for h in d["hashes"]),
            since=mark,
            timeout=RESUME_WITHIN,
        )
        stack.timings["redis restarted -> hashes again (s)"] = time.monotonic() - back
        await page.set_frequency(0)
    after = started_at(stack)
    for service, (was_started, restarts) in before.items():
        if service != "redis":
            assert after[service] == (was_started, restarts), f"{service} restarted"
    assert after["redis"][0] != before["redis"][0], "redis was not restarted"


def test_sigterm_inside_a_worker_exits_0_and_the_policy_restarts_it(stack: ComposeStack) -> None:
    container = stack.containers()["worker-primary"]
    restarts = stack.inspect("worker-primary")["RestartCount"]
    since = str(int(time.time()) - 1)
    # From inside, as Kubernetes or a user's `kill` would: `docker kill -s TERM` would disable
    # the restart policy until the next start (see the field notes).
    docker("exec", container, "python", "-c", "import os, signal; os.kill(1, signal.SIGTERM)")
    sent = time.monotonic()
    deadline = sent + 120
    while time.monotonic() < deadline:
        info = stack.inspect("worker-primary")
        health = info["State"].get("Health", {}).get("Status")
        if info["RestartCount"] > restarts and health == "healthy":
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"worker-primary not back and healthy: {stack.health()}")
    stack.timings["worker SIGTERM -> restarted and healthy (s)"] = time.monotonic() - sent
    died = docker(
        "events",
        "--since",
        since,
        "--until",
        str(int(time.time()) + 1),
        "--filter",
        f"container={container}",
        "--filter",
        "event=die",
        "--format",
        "{{.Actor.Attributes.exitCode}}",
        timeout=30,
    ).split()
    assert died and died[0] == "0", f"exit codes after SIGTERM: {died}"


def test_down_leaves_no_container_network_or_volume(stack: ComposeStack) -> None:
    stack.down()
    assert stack.leftovers() == []
