"""Redis connections: bounded timeouts everywhere, and a subscription that survives restarts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

# What a lost or restarting Redis raises; callers turn these into 503s, not stack traces.
REDIS_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    OSError,
    asyncio.TimeoutError,
)


def create_client(url: str, *, timeout: float = 1.0, retries: int = 1) -> aioredis.Redis:
    """A client whose every connect and command gives up after `timeout` seconds.

    One quick retry covers the common case of a connection that went stale while Redis restarted;
    anything longer is the caller's decision (answer 503, retry later). Commands that must not
    run twice (PUBLISH: the reply to the first try may have been lost) want `retries=0`.
    """
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), retries=retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionResetError],
        health_check_interval=0,
    )


async def ping_reason(client: aioredis.Redis, timeout: float = 1.0) -> str | None:
    """None while Redis answers PING, else a short reason fit for a 503 body."""
    try:
        async with asyncio.timeout(timeout):
            await client.ping()
    except REDIS_DOWN_ERRORS as exc:
        return f"redis unavailable: {describe_error(exc)}"
    return None


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


MessageHandler = Callable[[str, bytes], Awaitable[None] | None]
StateHandler = Callable[[bool, str | None], None]


async def subscribe_forever(
    url: str,
    channels: Iterable[str],
    on_message: MessageHandler,
    on_state: StateHandler | None = None,
    *,
    timeout: float = 1.0,
    max_backoff: float = 2.0,
) -> None:
    """Subscribe to `channels` and call `on_message(channel, data)` for each message, forever.

    When Redis goes away the subscription is re-established with capped exponential backoff
    (so it is back within ~`max_backoff` s of Redis returning). `on_state(up, reason)` reports each
    change. Runs until cancelled.

    Not redis-py's own retrying of a PubSub: it re-subscribes by itself, but only inside a
    blocked read, so nothing would learn that Redis is away (the page's "Redis is up", a
    replica's refusal to share changes it cannot share) or re-read what it missed meanwhile.
    """
    channel_list = list(channels)
    backoff = 0.05
    up: bool | None = None

    def report(now_up: bool, reason: str | None) -> None:
        nonlocal up
        if now_up != up:
            up = now_up
            if now_up:
                log.info("subscribed to redis", extra={"channels": channel_list})
            else:
                log.warning("redis subscription lost", extra={"reason": reason})
            if on_state is not None:
                on_state(now_up, reason)

    while True:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=None)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            async with asyncio.timeout(timeout):
                await pubsub.subscribe(*channel_list)
            report(True, None)
            backoff = 0.05
            while True:
                # A bounded wait lets us notice a dead connection even when no message comes.
                message = await pubsub.get_message(timeout=timeout)
                if message is None:
                    async with asyncio.timeout(timeout):
                        await pubsub.ping()
                    continue
                if message.get("type") != "message":
                    continue
                channel = message["channel"]
                channel_name = channel.decode() if isinstance(channel, bytes) else str(channel)
                result = on_message(channel_name, message["data"])
                if result is not None:
                    await result
        except asyncio.CancelledError:
            raise
        except REDIS_DOWN_ERRORS as exc:
            report(False, describe_error(exc))
        finally:
            try:
                await pubsub.aclose()
                await client.aclose()
            except REDIS_DOWN_ERRORS:
                pass
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff)
