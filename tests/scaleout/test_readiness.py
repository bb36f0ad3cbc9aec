"""A replica is not ready until it has the deployment's frequency from Redis; what Redis holds
wins over the replica's own FREQUENCY, and broken data there is ignored or repaired."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis

from harness.frontend import Page, new_channel, start_frontend
from harness.metrics import metric_value
from harness.processes import ManagedProcess
from harness.redis_server import RedisServer
from istio_burst.frontend.replicas.shared_frequency import frequency_key

OWN_FREQUENCY = "7"  # the replica's FREQUENCY setting


@contextmanager
def replica(
    server: RedisServer, log_dir: Path, channel: str
) -> Iterator[tuple[ManagedProcess, str]]:
    """A frontend (sending nowhere that answers) on `channel`, started (not necessarily
    ready); yields the process and its URL."""
    frontend, url = start_frontend(
        server, log_dir, "http://127.0.0.1:9/", CHANNEL=channel, FREQUENCY=OWN_FREQUENCY
    )
    try:
        yield frontend, url
        assert frontend.alive()
    finally:
        frontend.stop()


async def current_frequency(url: str) -> float:
    async with Page(url) as page:
        freq = float((await page.wait_for("frequency"))["freq"])
        await page.set_frequency(0)
    return freq


async def test_not_ready_until_the_shared_frequency_is_loaded(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    channel = new_channel()
    own_redis.stop()
    with replica(own_redis, tmp_path, channel) as (frontend, url):
        answer = httpx.get(url + "/_healthz", timeout=5)
        assert answer.status_code == 503
        assert "redis" in answer.json()["reason"]

        own_redis.start()
        frontend.wait_http_ok(url + "/_healthz")
        # Redis held nothing for this deployment: the replica's FREQUENCY seeded it, and it
        # drives it (all of it: it is alone).
        with redis.Redis.from_url(own_redis.url) as client:
            assert client.hget(frequency_key(channel), "freq") == b"7.0"
        assert metric_value(url, "hashr_frontend_frequency") == 7
        assert await current_frequency(url) == 7


async def test_a_new_replica_starts_at_the_shared_frequency_not_its_own(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    channel = new_channel()
    with redis.Redis.from_url(redis_server.url) as client:
        client.hset(frequency_key(channel), mapping={"freq": "33.0", "version": "5"})
    with replica(redis_server, tmp_path, channel) as (frontend, url):
        frontend.wait_http_ok(url + "/_healthz")
        assert await current_frequency(url) == 33


async def test_broken_frequency_data_in_redis_is_ignored_or_repaired(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    channel = new_channel()
    key = frequency_key(channel)
    with redis.Redis.from_url(redis_server.url) as client:
        client.hset(key, mapping={"freq": "lots", "version": "1"})
        with replica(redis_server, tmp_path, channel) as (frontend, url):
            frontend.wait_http_ok(url + "/_healthz")
            assert client.hget(key, "freq") == b"7.0", "the broken value was not replaced"
            async with Page(url) as page:
                await page.wait_for("frequency", lambda d: d["freq"] == 7)
                mark = page.mark()
                for junk in (b"nonsense", b'{"freq": -1, "version": 999}', b'{"freq": 5}'):
                    client.publish(key, junk)
                await page.set_frequency(3)  # still follows real changes
                changes = [e.data["freq"] for e in page.events[mark:] if e.name == "frequency"]
                assert changes == [3]
                await page.set_frequency(0)


async def test_a_script_sets_the_frequency_every_page_follows(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """`python -m istio_burst.frontend.set_frequency F` (scripts/kind-e2e.sh), run with the
    frontend's own environment, moves the deployment as a page would; a bad F is refused."""
    channel = new_channel()
    env = {**os.environ, "REDIS_URL": redis_server.url, "CHANNEL": channel, "MAX_FREQUENCY": "50"}
    command = [sys.executable, "-m", "istio_burst.frontend.set_frequency"]
    with replica(redis_server, tmp_path, channel) as (frontend, url):
        frontend.wait_http_ok(url + "/_healthz")
        async with Page(url) as page:
            await page.wait_for("frequency", lambda d: d["freq"] == 7)
            done = subprocess.run([*command, "30"], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            await page.wait_for("frequency", lambda d: d["freq"] == 30)
            refused = subprocess.run([*command, "500"], env=env, capture_output=True, text=True)
            assert refused.returncode == 2 and "50" in refused.stderr
            await page.set_frequency(0)
