"""One POST gives exactly one message on the channel, with the prefix, as the response says."""

from __future__ import annotations

import httpx
import redis

from harness.channel import next_message
from harness.redis_server import RedisServer
from istio_burst.core.contracts import HashMessage
from tests.worker.conftest import RunningWorker


def test_one_post_publishes_exactly_one_prefixed_message(
    redis_server: RedisServer, burst_worker: str
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("calculation")
    assert next_message(pubsub, timeout=0.2) is None  # consumes the subscribe confirmation
    try:
        response = httpx.post(burst_worker + "/", json={"str": "abcdefghij"}, timeout=5)
        assert response.status_code == 200
        answered = HashMessage.decode(response.content)

        first = next_message(pubsub, timeout=5)
        assert first is not None, "nothing was published"
        published = HashMessage.decode(first)
        assert published == answered
        assert published.value.startswith("bursty-")
        assert len(published.value) == len("bursty-") + 44
        assert published.cluster == "burst"
        assert next_message(pubsub, timeout=0.5) is None, "more than one message for one POST"
    finally:
        pubsub.close()
        client.close()


def test_liveness_readiness_metrics_and_schema(shared_worker: RunningWorker) -> None:
    http = shared_worker.http
    live = http.get("/")
    assert (live.status_code, live.text) == (200, "ok")
    assert http.get("/_healthz").json() == {"status": "ok"}

    assert http.post("/", json={"str": "abc"}).status_code == 200
    metrics = http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        'hashr_worker_requests_total{status="200"}',
        "hashr_worker_hash_seconds_bucket",
        "hashr_worker_publish_seconds_bucket",
        "hashr_worker_publish_batch_size_bucket",
        "hashr_worker_publish_errors_total",
        "hashr_worker_redis_up 1.0",
        "hashr_worker_publish_in_flight 0.0",
    ):
        assert name in metrics.text, name

    post = http.get("/openapi.json").json()["paths"]["/"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["str"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(post["responses"])
