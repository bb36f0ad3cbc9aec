"""The watcher's state: what /status answers and what the frontend's page shows (via Redis)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from istio_burst.core.contracts import WATCHER_STATE_CHANNEL, WATCHER_STATE_KEY, Weights
from istio_burst.core.redis import REDIS_DOWN_ERRORS, create_client, describe_error
from istio_burst.watcher import metrics

log = logging.getLogger(__name__)


@dataclass
class LastChange:
    at: float  # Unix time
    old: dict[str, int]
    new: dict[str, int]
    decision: str
    reason: str


@dataclass
class WatcherState:
    """One JSON object; the keys up to `actuator` are the contract with the frontend's page."""

    reading: float | None = None  # req/s, None when the last reading was not usable
    reading_kind: str = "none"  # see ReadingKind; "none" before the first reading
    weights: dict[str, int] = field(default_factory=lambda: Weights().as_dict())
    mode: str = "switch"
    decision: str = "hold"  # hold | to_burst | more_burst | less_burst | to_primary
    reason: str = "starting"
    at: float = 0.0  # Unix time of this state
    ready: bool = False
    actuator: str = ""
    detail: str = ""
    reading_detail: str = ""
    not_ready_reason: str = "no reading yet"
    target: str = ""
    dry_run: bool = False
    thresholds: dict[str, float] = field(default_factory=dict)
    read_failures: int = 0
    write_failures: int = 0
    burst_health: dict[str, Any] = field(default_factory=lambda: {"healthy": None, "detail": ""})
    last_change: LastChange | None = None
    # Whether the weights written are in force: {target, state: applied | pending | refused |
    # not_accepted | unverified, detail, pending_for}
    routing: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StatePublisher:
    """SET the state on WATCHER_STATE_KEY and PUBLISH it on WATCHER_STATE_CHANNEL.

    Best effort: a Redis outage is counted and logged once, never stops the watcher.
    """

    def __init__(self, redis_url: str, timeout: float) -> None:
        self._client = create_client(redis_url, timeout=timeout)
        self._failing = False

    async def publish(self, state: WatcherState) -> None:
        payload = orjson.dumps(state.as_dict())
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(WATCHER_STATE_KEY, payload)
                pipe.publish(WATCHER_STATE_CHANNEL, payload)
                await pipe.execute()
        except REDIS_DOWN_ERRORS as exc:
            metrics.STATE_PUBLISH_ERRORS.inc()
            if not self._failing:
                log.warning("cannot publish state on redis", extra={"reason": describe_error(exc)})
            self._failing = True
            return
        if self._failing:
            log.info("publishing state on redis again")
        self._failing = False

    async def close(self) -> None:
        await self._client.aclose()
