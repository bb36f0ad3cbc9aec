"""What the services say to each other, written down once and imported by both sides.

- The worker PUBLISHes a `HashMessage` (JSON) on the `calculation` channel; the frontend decodes it.
- The watcher writes its `WatcherState` (JSON, with the `Weights` it reports and its last
  `DecisionRecord`s) to WATCHER_STATE_KEY and publishes it on WATCHER_STATE_CHANNEL; the frontend
  parses it with the same model and shows it on the page. The weights are
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
from enum import StrEnum
from typing import Annotated, Any, Self

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    computed_field,
)

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


class _Decodes(BaseModel):
    """decode and from_fields, with a ContractError saying what is wrong; no model_config, so
    a model that must stay mutable (WatcherState) shares them too."""

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


class _Contract(_Decodes):
    model_config = ConfigDict(frozen=True, extra="ignore")


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


# ---- the watcher's state ------------------------------------------------------------------------


class ReadingKind(StrEnum):
    """What one Prometheus query gave: a number, or exactly which kind of nothing."""

    NUMBER = "number"
    EMPTY = "empty"  # the query matched no series
    NAN_INF = "nan_inf"
    MULTIPLE_SERIES = "multiple_series"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"  # 4xx/5xx, e.g. a PromQL syntax error (400) or overload (503)
    REDIRECT = "redirect"  # 3xx: Prometheus never redirects a query; its body is no reading
    MALFORMED = "malformed"  # not a Prometheus instant query's JSON, or over the size cap


class ActuatorErrorKind(StrEnum):
    """Why a read or write of the weights (VirtualService, HAProxy) failed."""

    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"  # changed since it was read: read again and decide again
    INVALID = "invalid"  # the object is not what we can work with, or the write was rejected
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    CONFIG = "config"  # no kubeconfig / in-cluster credentials


class Mode(StrEnum):
    SWITCH = "switch"  # everything to burst above HIGH, back below LOW
    OVERFLOW = "overflow"  # only the load over PRIMARY_CAPACITY goes to burst, in steps


class Action(StrEnum):
    """What a decision does to the weights."""

    HOLD = "hold"
    TO_BURST = "to_burst"
    MORE_BURST = "more_burst"
    LESS_BURST = "less_burst"
    TO_PRIMARY = "to_primary"


class Reason(StrEnum):
    """Which rule of the decision gave its weights."""

    ABOVE_HIGH = "above_high"
    BETWEEN_THRESHOLDS = "between_thresholds"
    BELOW_LOW = "below_low"
    STABILIZING = "stabilizing"
    LOW_FOR_WINDOW = "low_for_window"
    OVER_CAPACITY = "over_capacity"
    WITHIN_CAPACITY = "within_capacity"
    UNDER_CAPACITY = "under_capacity"
    DWELL = "dwell"
    BAD_READING = "bad_reading"
    FAIL_SAFE_PRIMARY = "fail_safe_primary"
    FAIL_SAFE_BURST = "fail_safe_burst"
    BURST_UNHEALTHY = "burst_unhealthy"
    BURST_BACKOFF = "burst_backoff"
    OVERRIDE = "override"


class RecordReason(StrEnum):
    """Why a decision record was written: the ledger's reasons (and the Kubernetes Events')."""

    BURST_STARTED = "BurstStarted"
    BURST_ENDED = "BurstEnded"
    OVERFLOW_STEP = "OverflowStep"
    HAND_EDIT_UNDONE = "HandEditUndone"
    HELD_STALE_METRICS = "HeldStaleMetrics"  # readings stopped; outage policy hold
    FAIL_SAFE_PRIMARY = "FailSafePrimary"  # readings stopped; outage policy primary
    FAIL_SAFE_BURST = "FailSafeBurst"  # readings stopped; outage policy burst
    METRICS_RESUMED = "MetricsResumed"  # usable readings again: the outage is over
    BURST_UNHEALTHY = "BurstUnhealthy"
    OVERRIDE_APPLIED = "OverrideApplied"
    OVERRIDE_EXPIRED = "OverrideExpired"
    OVERRIDE_CLEARED = "OverrideCleared"
    OVERRIDE_REFUSED = "OverrideRefused"  # malformed: ignored, decided as if there were none


class RecordOutcome(StrEnum):
    WRITTEN = "written"
    CONFLICT = "conflict"  # changed under the watcher in every attempt of the round
    FAILED = "failed"
    DRY_RUN = "dry_run"  # would have been written
    NONE = "none"  # nothing to write (a hold, a pause, a refused override)


# Records that call for a look: the Kubernetes Event's Warning, the page's highlighted decision.
WARNING_REASONS = frozenset(
    {
        RecordReason.FAIL_SAFE_PRIMARY,
        RecordReason.FAIL_SAFE_BURST,
        RecordReason.HELD_STALE_METRICS,
        RecordReason.BURST_UNHEALTHY,
        RecordReason.OVERRIDE_REFUSED,
    }
)
WARNING_OUTCOMES = frozenset({RecordOutcome.FAILED, RecordOutcome.CONFLICT})


class OverrideTarget(StrEnum):
    PRIMARY = "primary"  # everything to primary
    BURST = "burst"  # everything to burst
    PAUSE = "pause"  # the weights stay as they are: nothing is written


class Override(BaseModel):
    """An operator's override: from the routed object's annotations, or set locally."""

    target: OverrideTarget
    until: float | None = None  # Unix time it expires; None: until removed
    source: str = ""  # "annotation" or "local"


class Role(StrEnum):
    SINGLE = "single"  # no leader election: the only writer
    LEADER = "leader"  # holds the Lease: reads, decides and writes
    STANDBY = "standby"  # another replica holds the Lease: waits, writes nothing


class DecisionRecord(BaseModel):
    """One entry of the decision ledger: a change of the weights (or an attempt), a hand edit
    undone, a fail-safe entered or left, an override started, ended or refused. The same record
    repeated (same reason, weights and outcome) is counted, not added again (`count`, `last_at`).
    """

    at: float  # Unix time of the first occurrence
    last_at: float  # Unix time of the latest repeat
    count: int = 1
    action: Action
    reason: RecordReason
    detail: str  # in words: "30 req/s above HIGH 15"
    reading: float | None = None  # req/s the decision used; None when unusable
    reading_kind: ReadingKind | None = None
    window: str = ""  # the query's rate window, e.g. "5s"
    thresholds: dict[str, float] = Field(default_factory=dict)
    before: dict[str, int]
    after: dict[str, int]  # what the decision asked for
    outcome: RecordOutcome
    error_kind: ActuatorErrorKind | None = None  # for failed and conflict

    @computed_field  # type: ignore[prop-decorator]
    @property
    def warning(self) -> bool:
        """A failure, a fail-safe or a refusal: shown as a warning."""
        return self.reason in WARNING_REASONS or self.outcome in WARNING_OUTCOMES

    def same_as(self, other: DecisionRecord) -> bool:
        """A repeat of `other`: counted into it rather than recorded again. A change repeats
        whatever its detail (the reading in it moves); a transition only word for word."""
        if self.outcome is RecordOutcome.NONE and self.detail != other.detail:
            return False
        return (self.reason, self.action, self.before, self.after, self.outcome) == (
            other.reason,
            other.action,
            other.before,
            other.after,
            other.outcome,
        )


class Sample(BaseModel):
    """One round for the page's chart."""

    at: float  # Unix time
    reading: float | None
    burst: int  # the burst weight in force after the round
    band: str = ""  # "override", "outage" or "" (shaded on the chart)


class LastChange(BaseModel):
    at: float  # Unix time
    old: dict[str, int]
    new: dict[str, int]
    decision: Action
    reason: Reason


def _weights_read(value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
    # A reader shows these weights as the routing in force, so what it reads must be weights.
    # Only read states are checked: the watcher builds its own from Weights.
    if info.mode == "json":
        Weights.decode(value)
    return value


class WatcherState(_Decodes):
    """What the watcher answers on /status and publishes on Redis for the page.

    Fields a newer watcher adds are ignored by an older reader; every field but the weights has
    a default, so a state from an older watcher still parses.
    """

    model_config = ConfigDict(extra="ignore")

    reading: float | None = None  # req/s, None when the last reading was not usable
    reading_kind: ReadingKind | None = None  # None before the first reading
    reading_error_kind: ReadingKind | None = None  # set while the last reading was not usable
    reading_detail: str = ""
    weights: Annotated[dict[str, int], AfterValidator(_weights_read)]  # required
    mode: Mode = Mode.SWITCH
    decision: Action = Action.HOLD
    reason: Reason | None = None  # None before the first round
    detail: str = ""
    at: float = 0.0  # Unix time of this state
    ready: bool = False
    not_ready_reason: str = "no reading yet"
    actuator: str = ""
    target: str = ""
    actuator_error_kind: ActuatorErrorKind | None = None  # set while the last call failed
    actuator_error: str = ""  # what that failure said
    dry_run: bool = False
    thresholds: dict[str, float] = Field(default_factory=dict)
    read_failures: int = 0
    write_failures: int = 0
    burst_health: dict[str, Any] = Field(default_factory=lambda: {"healthy": None, "detail": ""})
    last_change: LastChange | None = None
    # Whether the weights written are in force: {target, state: applied | pending | refused |
    # not_accepted | unverified, detail, pending_for}
    routing: dict[str, Any] = Field(default_factory=dict)
    role: Role = Role.SINGLE
    override: Override | None = None  # the override in force
    override_problem: str = ""  # why the override given was refused (malformed)
    outage_since: float | None = None  # Unix time readings stopped, while the outage policy acts
    outage_policy: str = "hold"
    decisions: list[DecisionRecord] = Field(default_factory=list)  # the newest last
    history: list[Sample] = Field(default_factory=list)  # the last minutes, oldest first

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
