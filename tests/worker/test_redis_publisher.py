"""The worker's own PUBLISH connection against a real redis-server with a password and a unix
socket: every REDIS_URL form the settings accept publishes, and a wrong password says so."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from istio_burst.core.settings import normalize_redis_url
from istio_burst.worker.redis_publisher import PublishError, RedisPublisher
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, require_binary

PASSWORD = "s3cret"


@dataclass
class LockedRedis:
    port: int
    socket: Path


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockedRedis]:
    workdir = tmp_path_factory.mktemp("locked-redis")
    server = LockedRedis(free_port(), workdir / "redis.sock")
    argv = [require_binary("redis-server"), "--port", str(server.port), "--bind", "127.0.0.1"]
    argv += ["--unixsocket", str(server.socket), "--requirepass", PASSWORD, "--save", ""]
    proc = ManagedProcess(f"redis-locked-{server.port}", argv, workdir).start()

    def answers() -> bool:
        try:
            return bool(redis.Redis(port=server.port, password=PASSWORD).ping())
        except redis.RedisError:
            return False

    proc.wait_until(answers, 10, "redis PING")
    yield server
    proc.stop()


def subscribed(server: LockedRedis) -> redis.client.PubSub:
    pubsub: redis.client.PubSub = redis.Redis(port=server.port, password=PASSWORD).pubsub()
    pubsub.subscribe("calculation")
    confirmation = pubsub.get_message(timeout=5)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    return pubsub


@pytest.mark.parametrize(
    "url",
    [
        "redis://:{password}@127.0.0.1:{port}/0",
        "redis://default:{password}@127.0.0.1:{port}/3",
        "unix://{socket}?password={password}",
    ],
)
async def test_each_url_form_publishes(url: str, locked_redis: LockedRedis) -> None:
    address = url.format(password=PASSWORD, port=locked_redis.port, socket=locked_redis.socket)
    publisher = RedisPublisher(normalize_redis_url(address), "calculation", timeout=2.0)
    pubsub = subscribed(locked_redis)
    try:
        assert await publisher.publish(b"first") == 1  # one subscriber got it
        assert await publisher.publish(b"second") == 1
    finally:
        await publisher.stop()
    received = [pubsub.get_message(timeout=5) for _ in range(2)]
    assert [m["data"] for m in received if m] == [b"first", b"second"]
    pubsub.close()


async def test_a_wrong_password_is_a_clear_503_reason(locked_redis: LockedRedis) -> None:
    url = f"redis://:wrong@127.0.0.1:{locked_redis.port}/0"
    publisher = RedisPublisher(url, "calculation", timeout=2.0)
    try:
        with pytest.raises(PublishError, match="redis refused AUTH: WRONGPASS"):
            await publisher.publish(b"nope")
    finally:
        await publisher.stop()


async def test_no_password_is_a_clear_503_reason(locked_redis: LockedRedis) -> None:
    publisher = RedisPublisher(f"redis://127.0.0.1:{locked_redis.port}/0", "calculation", 2.0)
    try:
        with pytest.raises(PublishError, match="refused the publish: NOAUTH"):
            await publisher.publish(b"nope")
    finally:
        await publisher.stop()
