"""A replica is not ready until it has the deployment's frequency from Redis."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis

from istio_burst.frontend.shared_frequency import frequency_key
from tests.support.frontend import Page, new_channel, start_frontend
from tests.support.redis_server import RedisServer


async def test_not_ready_until_the_shared_frequency_is_loaded(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    channel = new_channel()
    own_redis.stop()
    frontend, url = start_frontend(
        own_redis, tmp_path, "http://127.0.0.1:9/", CHANNEL=channel, FREQUENCY="7"
    )
    try:
        answer = httpx.get(url + "/_healthz", timeout=5)
        assert answer.status_code == 503
        assert "redis" in answer.json()["reason"]

        own_redis.start()
        frontend.wait_http_ok(url + "/_healthz", timeout=15)
        # Redis held nothing for this deployment: the replica's FREQUENCY seeded it.
        client = redis.Redis.from_url(own_redis.url)
        try:
            assert client.hget(frequency_key(channel), "freq") == b"7.0"
        finally:
            client.close()
        async with Page(url) as page:
            assert (await page.wait_for("frequency"))["freq"] == 7
            await page.set_frequency(0)
    finally:
        frontend.stop()


async def test_a_new_replica_starts_at_the_shared_frequency_not_its_own(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    channel = new_channel()
    client = redis.Redis.from_url(redis_server.url)
    client.hset(frequency_key(channel), mapping={"freq": "33.0", "version": "5"})
    client.close()
    frontend, url = start_frontend(
        redis_server, tmp_path, "http://127.0.0.1:9/", CHANNEL=channel, FREQUENCY="7"
    )
    try:
        frontend.wait_http_ok(url + "/_healthz", timeout=15)
        async with Page(url) as page:
            assert (await page.wait_for("frequency"))["freq"] == 33
            await page.set_frequency(0)
    finally:
        frontend.stop()


async def test_broken_frequency_data_in_redis_is_ignored_or_repaired(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    channel = new_channel()
    key = frequency_key(channel)
    client = redis.Redis.from_url(redis_server.url)
    client.hset(key, mapping={"freq": "lots", "version": "1"})
    frontend, url = start_frontend(
        redis_server, tmp_path, "http://127.0.0.1:9/", CHANNEL=channel, FREQUENCY="7"
    )
    try:
        frontend.wait_http_ok(url + "/_healthz", timeout=15)
        assert client.hget(key, "freq") == b"7.0", "the broken value was not replaced"
        async with Page(url) as page:
            await page.wait_for("frequency", lambda d: d["freq"] == 7)
            mark = page.mark()
            for junk in (b"nonsense", b'{"freq": -1, "version": 999}', b'{"freq": 5}'):
                client.publish(key, junk)
            await page.set_frequency(3)  # still follows real changes
            assert [e.data["freq"] for e in page.events[mark:] if e.name == "frequency"] == [3]
            await page.set_frequency(0)
        assert frontend.alive()
    finally:
        frontend.stop()
        client.close()
