"""Reading a Redis channel in tests, the way a subscriber would."""

from __future__ import annotations

import time
from typing import Any

import redis


def next_message(pubsub: redis.client.PubSub, timeout: float) -> bytes | None:
    """The next published message's data within `timeout` s, skipping subscribe confirmations."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        message: dict[str, Any] | None = pubsub.get_message(timeout=left)
        if message is not None and message["type"] == "message":
            data: bytes = message["data"]
            return data
    return None
