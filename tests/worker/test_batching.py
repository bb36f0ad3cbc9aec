"""In-process (httpx.ASGITransport, real Redis): concurrent requests share PUBLISH pipelines, and
each still gets exactly its own message back."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from harness.redis_server import RedisServer
from istio_burst.worker.app import create_app
from istio_burst.worker.main import Settings

CONCURRENT = 200


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_concurrent_requests_share_pipelines_and_each_is_published(
    redis_server: RedisServer,
) -> None:
    channel = f"batching-{uuid.uuid4().hex[:8]}"
    app = create_app(Settings(redis_url=redis_server.host_port, channel=channel, prefix="p-"))
    subscriber = aioredis.Redis.from_url(redis_server.url)
    pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    batches_before = sample("hashr_worker_publish_batch_size_count")
    try:
        async with (
            app.router.lifespan_context(app),  # ASGITransport does not run the lifespan
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://worker"
            ) as http,
        ):
            answers = await asyncio.gather(
                *(http.post("/", json={"str": f"text {i}"}) for i in range(CONCURRENT))
            )
            received: list[bytes] = []
            async with asyncio.timeout(10):
                while len(received) < CONCURRENT:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        received.append(message["data"])
    finally:
        await pubsub.aclose()
        await subscriber.aclose()

    assert [a.status_code for a in answers] == [200] * CONCURRENT
    assert sorted(received) == sorted(a.content for a in answers)
    assert all(a.json()["value"].startswith("p-") for a in answers)
    batches = sample("hashr_worker_publish_batch_size_count") - batches_before
    assert 1 <= batches < CONCURRENT / 2, f"{batches} pipelines for {CONCURRENT} requests"
