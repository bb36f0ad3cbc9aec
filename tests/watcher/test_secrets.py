"""Passwords in URL settings never leave the watcher: not in /status, not in the state the page
gets through Redis, not in its logs, also while the URLs fail and their errors are reported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from harness.channel import next_message
from harness.kube.front import KubeFront
from harness.ports import free_port
from harness.redis_server import RedisServer
from harness.watcher import start_watcher, wait_rounds, wait_status
from istio_burst.core.contracts import WATCHER_STATE_CHANNEL, WATCHER_STATE_KEY
from istio_burst.core.settings import redact_url
from tests.watcher.fake_http import Answer, ScriptedServer, vector

SECRET = "secret"


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, password=f"{SECRET}-redis-pw").start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:secret@127.0.0.1:9090", "http://user:***@127.0.0.1:9090"),
        ("redis://:secret@redis-cache:6379/0", "redis://:***@redis-cache:6379/0"),
        ("https://token-secret@example.test/x?a=b@c", "https://***@example.test/x?a=b@c"),
        ("http://u:p@ss-secret@h:1/p", "http://u:***@h:1/p"),  # an unescaped @ in a password
        ("error at http://a:secret@h:1/api: refused", "error at http://a:***@h:1/api: refused"),
        ("http://127.0.0.1:9090/p@x", "http://127.0.0.1:9090/p@x"),
        ("localhost:6379", "localhost:6379"),
    ],
)
def test_redact_url_hides_the_password_of_every_url_in_a_text(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_passwords_are_absent_from_status_state_and_logs(
    prom: ScriptedServer, kube: KubeFront, locked_redis: RedisServer, tmp_path: Path
) -> None:
    prometheus_url = prom.url.replace("http://", f"http://user:{SECRET}@")
    dead_health_url = f"http://user:{SECRET}@127.0.0.1:{free_port()}/_healthz"
    prom.answer = Answer(200, vector("3"))
    client = redis.Redis.from_url(locked_redis.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(WATCHER_STATE_CHANNEL)
    proc, url = start_watcher(
        tmp_path,
        prometheus_url,
        **kube.watcher_env(tmp_path),
        REDIS_URL=locked_redis.url,
        BURST_HEALTH_URL=dead_health_url,
        LOG_FORMAT="json",  # as a user starts it
    )
    try:
        wait_status(proc, url, lambda s: s["reading_kind"] == "number")
        # Errors that carry URLs: a redirect to a URL with a password, an unreachable health URL.
        elsewhere = f"http://user:{SECRET}@elsewhere.test/api/v1/query"
        prom.answer = Answer(302, vector("3"), headers={"Location": elsewhere})
        shown = wait_status(proc, url, lambda s: s["reading_kind"] == "redirect")
        assert "user:***@elsewhere.test" in shown["reading_detail"]
        assert "user:***@127.0.0.1" in shown["burst_health"]["detail"]
        prom.stop()  # Prometheus gone: connection errors
        wait_status(proc, url, lambda s: s["reading_kind"] == "unreachable")

        status_text = httpx.get(url + "/status", timeout=5).text
        stored = client.get(WATCHER_STATE_KEY)
        published = next_message(pubsub, timeout=10)
        wait_rounds(proc, url, 2)  # a few more rounds of logs
    finally:
        proc.stop()
        pubsub.close()
        client.close()
    log = proc.output()
    assert isinstance(stored, bytes) and published, "the state reached Redis (with AUTH)"
    assert "redis://:***@127.0.0.1" in log, "the effective settings are logged, redacted"
    assert "user:***@" in log
    for where, text in [
        ("/status", status_text),
        ("the state on Redis", stored.decode()),
        ("the state published", published.decode()),
        ("the log", log),
    ]:
        assert SECRET not in text, f"the secret leaks in {where}"
