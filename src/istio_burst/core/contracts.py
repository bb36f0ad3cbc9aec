"""What the services say to each other, written down once and imported by both sides.

- The worker PUBLISHes a `HashMessage` (JSON) on the `calculation` channel; the frontend decodes it.
- The watcher writes its state (JSON object, with the `Weights` it reports) to WATCHER_STATE_KEY
  and publishes it on WATCHER_STATE_CHANNEL; the frontend shows it on the page. The weights are
  applied by the data plane (the Istio VirtualService, or HAProxy locally), never by the frontend.
- The frontend counts its sends in FRONTEND_REQUESTS_METRIC (the page and bench read it; the
  watcher reads what the data plane counted).
- Frontend replicas share the deployment's frequency as a `FrequencyChange` (published by a Redis
  script with cjson, read back with the model) and their figures as `ReplicaFigures` (heartbeats);
  each shows its pages a `PageStats` once a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CALCULATION_CHANNEL = "calculation"
WATCHER_STATE_KEY = "istio-burst:watcher"
WATCHER_STATE_CHANNEL = "istio-burst:watcher"

SUBSET_PRIMARY = "primary"
SUBSET_BURST = "burst"
# The local data plane (HAProxy): the backend in front of the workers; its servers are named by
# the subsets. The demo's haproxy.cfg, the watcher's haproxy actuator and its queries use these.
PROXY_BACKEND = "workers"
SUBSETS = (SUBSET_PRIMARY, SUBSET_BURST)

# Counter exposed by the frontend as `hashr_frontend_requests_total{target, outcome}`:
# target = "default" (the one PROCESSOR_URL), outcome = ok|failed|skipped.
FRONTEND_REQUESTS_METRIC = "hashr_frontend_requests_total"
OUTCOME_OK = "ok"
OUTCOME_FAILED = "failed"
OUTCOME_SKIPPED = "skipped"


class ContractError(ValueError):
    """A message on a shared channel or key that does not follow its contract."""


@dataclass(frozen=True, slots=True)
class HashMessage:
    """One published hash.

    `value` is exactly PREFIX + hash: what the page shows. `cluster` says which side produced it
    (primary or burst), `worker` which process/pod, `published_at` is Unix time in seconds.
    Wire format: a JSON object with these four keys, e.g.
    {"value":"bursty-P9pq...s0=","cluster":"burst","worker":"worker-7d9f-x2","published_at":1732467012.51}
    """

    value: str
    cluster: str
    worker: str
    published_at: float

    def encode(self) -> bytes:
        # orjson serialises dataclasses natively, fields in order: 6x faster than asdict().
        return orjson.dumps(self)

    @classmethod
    def decode(cls, raw: bytes | str) -> HashMessage:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            # The 2018 worker published the bare string; accept it so mixed fleets still show.
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            cluster = SUBSET_BURST if text.startswith("bursty-") else SUBSET_PRIMARY
            return cls(value=text, cluster=cluster, worker="unknown", published_at=time.time())
        try:
            return cls(
                value=str(data["value"]),
                cluster=str(data["cluster"]),
                worker=str(data.get("worker", "unknown")),
                published_at=float(data["published_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ContractError(f"bad hash message: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Weights:
    """Route weights of the worker's two subsets: whole numbers that sum to 100."""

    primary: int = 100
    burst: int = 0

    def __post_init__(self) -> None:
        for name in SUBSETS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise ContractError(f"weight {name}={value!r} is not a whole number in 0..100")
        if self.primary + self.burst != 100:
            raise ContractError(f"weights {self.primary}/{self.burst} do not sum to 100")

    def as_dict(self) -> dict[str, int]:
        return {SUBSET_PRIMARY: self.primary, SUBSET_BURST: self.burst}

    def encode(self) -> bytes:
        return orjson.dumps(self.as_dict())

    @classmethod
    def decode(cls, raw: bytes | str | dict[str, Any]) -> Weights:
        try:
            data = raw if isinstance(raw, dict) else orjson.loads(raw)
            return cls(primary=data[SUBSET_PRIMARY], burst=data[SUBSET_BURST])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ContractError(f"bad weights: {exc}") from exc

    def __str__(self) -> str:
        return f"{self.primary}/{self.burst}"


PRIMARY_ONLY = Weights(100, 0)
BURST_ONLY = Weights(0, 100)


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def decode(cls, raw: bytes | str) -> Self:
        """The model from its JSON, or ContractError saying what is wrong."""
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise _broken(cls, exc) from exc

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Self:
        """The model from fields read one by one (a Redis hash), or ContractError."""
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise _broken(cls, exc) from exc


def _broken(model: type[BaseModel], exc: ValidationError) -> ContractError:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "value"
    return ContractError(f"bad {model.__name__}: {where}: {first['msg']}")


class FrequencyChange(_Contract):
    """The deployment's frequency and the version Redis gave it. Published on, and stored in,
    `<channel>:frequency`; `freq` arrives as the text Redis holds (full precision), which the
    model reads as a number."""

    freq: float = Field(ge=0, allow_inf_nan=False)
    version: int = Field(ge=0)


class ReplicaFigures(_Contract):
    """What one frontend replica reports in its heartbeat."""

    achieved: float = 0.0
    share: float = 0.0
    in_flight: int = 0
    pages: int = 0


class ReplicaReport(ReplicaFigures):
    id: str


class TargetFigures(_Contract):
    ok: int
    failed: int
    skipped: int
    ok_rate: float
    failed_rate: float
    skipped_rate: float
    error: str | None


class DriverFigures(_Contract):
    """The load driver's snapshot: its frequency (this replica's share), what it achieved."""

    frequency: float
    achieved: float
    in_flight: int
    max_in_flight: int
    targets: dict[str, TargetFigures]


class RedisStatus(_Contract):
    up: bool
    reason: str | None


class PageStats(DriverFigures):
    """The `stats` event: the deployment's frequency, achieved rate and pages (every replica's
    figures summed), how many replicas, this replica's own figures and Redis' state."""

    pages: int
    replicas: int
    replica: ReplicaReport
    shared: bool
    redis: RedisStatus
