"""Publishing through redis-py against a real redis-server with a password, an ACL user and a
unix socket: every REDIS_URL form publishes, a wrong password says so, and readiness follows the
publishing path (a user who may PING but not PUBLISH is not ready)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from harness.ports import free_port
from harness.processes import ManagedProcess, require_binary
from harness.services import start_service
from istio_burst.core.redis import create_client
from istio_burst.core.settings import normalize_redis_url
from istio_burst.worker.publisher import Publisher, PublishError

PASSWORD = "s3cret"
USER, USER_PASSWORD = "hashr", "us3r-pw"  # an ACL user that may publish
MUTE, MUTE_PASSWORD = "mute", "mute-pw"  # an ACL user that may PING but not PUBLISH


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
    with redis.Redis(port=server.port, password=PASSWORD) as admin:
        for user, password, commands in (
            (USER, USER_PASSWORD, ["+publish", "+ping"]),
            (MUTE, MUTE_PASSWORD, ["+ping"]),
        ):
            admin.acl_setuser(
                user, enabled=True, passwords=[f"+{password}"], commands=commands, channels=["*"]
            )
    yield server
    proc.stop()


def subscribed(server: LockedRedis) -> redis.client.PubSub:
    pubsub: redis.client.PubSub = redis.Redis(port=server.port, password=PASSWORD).pubsub()
    pubsub.subscribe("calculation")
    confirmation = pubsub.get_message(timeout=5)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    return pubsub


def publisher_for(url: str) -> Publisher:
    client = create_client(normalize_redis_url(url), timeout=2.0, retries=0)
    return Publisher(client, "calculation", timeout=2.0)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:{password}@127.0.0.1:{port}/0",
        "redis://default:{password}@127.0.0.1:{port}/3",
        f"redis://{USER}:{USER_PASSWORD}@127.0.0.1:{{port}}/0",
        "unix://{socket}?password={password}",
    ],
)
async def test_each_url_form_publishes(url: str, locked_redis: LockedRedis) -> None:
    address = url.format(password=PASSWORD, port=locked_redis.port, socket=locked_redis.socket)
    publisher = publisher_for(address)
    pubsub = subscribed(locked_redis)
    try:
        assert await publisher.publish(b"first") == 1  # one subscriber got it
        assert await publisher.publish(b"second") == 1
        assert await publisher.unavailable_reason() is None
    finally:
        await publisher.stop()
    received = [pubsub.get_message(timeout=5) for _ in range(2)]
    assert [m["data"] for m in received if m] == [b"first", b"second"]
    pubsub.close()


async def test_a_wrong_password_is_a_clear_503_reason(locked_redis: LockedRedis) -> None:
    publisher = publisher_for(f"redis://:wrong@127.0.0.1:{locked_redis.port}/0")
    try:
        with pytest.raises(PublishError, match="redis unavailable: AuthenticationError"):
            await publisher.publish(b"nope")
    finally:
        await publisher.stop()


async def test_no_password_is_a_clear_503_reason(locked_redis: LockedRedis) -> None:
    publisher = publisher_for(f"redis://127.0.0.1:{locked_redis.port}/0")
    try:
        with pytest.raises(PublishError, match=r"AuthenticationError: .*authenticated"):
            await publisher.publish(b"nope")
    finally:
        await publisher.stop()


def test_readiness_fails_while_redis_refuses_the_publish(
    locked_redis: LockedRedis, tmp_path: Path
) -> None:
    """PING works for this user, PUBLISH does not: /_healthz must not say 200 while POSTs fail."""
    url = f"redis://{MUTE}:{MUTE_PASSWORD}@127.0.0.1:{locked_redis.port}/0"
    proc, base = start_service("worker", tmp_path, REDIS_URL=url)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/_healthz").status_code == 200  # nothing published yet: PING only
            post = http.post("/", json={"str": "abc"})
            assert post.status_code == 503
            assert "NoPermissionError" in post.json()["detail"]
            health = http.get("/_healthz")
            assert health.status_code == 503
            assert "redis refused the publish" in health.json()["reason"]
            assert "NoPermissionError" in health.json()["reason"]
    finally:
        proc.stop()


async def test_a_publish_on_its_way_when_the_worker_stops_fails_instead_of_hanging(
    locked_redis: LockedRedis,
) -> None:
    """Stopping cancels the pipeline in flight; its requests get the shutdown reason at once."""
    publisher = publisher_for(f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}/0")
    assert await publisher.publish(b"connected") == 0
    with redis.Redis(port=locked_redis.port, password=PASSWORD) as admin:
        admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")
    publishing = asyncio.ensure_future(publisher.publish(b"paused"))
    with pytest.raises(TimeoutError):  # Redis holds it: the pipeline is on its way
        await asyncio.wait_for(asyncio.shield(publishing), 0.3)
    await publisher.stop()
    with pytest.raises(PublishError, match="worker shutting down"):
        await asyncio.wait_for(publishing, 1.0)
