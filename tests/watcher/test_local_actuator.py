"""The local actuator on a real Redis: the routing key, its channel, and concurrent writers."""

from __future__ import annotations

import redis

from istio_burst.core.contracts import BURST_ONLY, PRIMARY_ONLY, ROUTING_CHANNEL, ROUTING_KEY
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind
from istio_burst.watcher.actuators.local import RedisActuator
from tests.support.channel import next_message
from tests.support.redis_server import RedisServer


async def test_writes_the_key_and_announces_it(own_redis: RedisServer) -> None:
    actuator = RedisActuator(own_redis.url, timeout=1)
    client = redis.Redis.from_url(own_redis.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(ROUTING_CHANNEL)
    try:
        seen = await actuator.read()
        assert seen.weights == PRIMARY_ONLY and not seen.exact, "missing key: rewrite it"
        await actuator.write(seen, BURST_ONLY)
        assert next_message(pubsub, timeout=5) == b'{"primary":0,"burst":100}'
        assert client.get(ROUTING_KEY) == b'{"primary":0,"burst":100}'
        again = await actuator.read()
        assert again.weights == BURST_ONLY and again.exact
    finally:
        pubsub.close()
        client.close()
        await actuator.close()


async def test_garbage_in_the_key_is_replaced_not_a_crash(own_redis: RedisServer) -> None:
    actuator = RedisActuator(own_redis.url, timeout=1)
    with redis.Redis.from_url(own_redis.url) as client:
        client.set(ROUTING_KEY, b'{"primary": 7, "burst": "lots"}')
        try:
            seen = await actuator.read()
            assert not seen.exact
            await actuator.write(seen, PRIMARY_ONLY)
            assert client.get(ROUTING_KEY) == b'{"primary":100,"burst":0}'
        finally:
            await actuator.close()


async def test_a_change_since_the_read_is_a_conflict(own_redis: RedisServer) -> None:
    actuator = RedisActuator(own_redis.url, timeout=1)
    with redis.Redis.from_url(own_redis.url) as client:
        try:
            seen = await actuator.read()
            client.set(ROUTING_KEY, b'{"primary":50,"burst":50}')  # someone else, in between
            try:
                await actuator.write(seen, BURST_ONLY)
            except ActuatorError as exc:
                assert exc.kind is ActuatorErrorKind.CONFLICT
            else:
                raise AssertionError("overwrote a concurrent change")
            assert client.get(ROUTING_KEY) == b'{"primary":50,"burst":50}'
        finally:
            await actuator.close()
