"""Telling the world what each round did: metrics, log lines (throttled), the decision ledger
(and its sinks), the state (/status and, via Redis, the page, with the last decisions and the last
minutes of readings and weights for its chart). The loop hands over each committed round; nothing
here feeds back into it.

Every change is logged at INFO; a steady state logs only when its reason or its reading trouble
changes, so a hold does not log every second.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from istio_burst.core.contracts import LastChange, Mode, Role, Sample, WatcherState, Weights
from istio_burst.core.settings import redact_url
from istio_burst.watcher import metrics
from istio_burst.watcher.acceptance import TROUBLE
from istio_burst.watcher.actuators import ActuatorError
from istio_burst.watcher.decide import Policy, verb
from istio_burst.watcher.ledger import Ledger
from istio_burst.watcher.outcome import Outcome, Round
from istio_burst.watcher.records import records_of, window_of
from istio_burst.watcher.state import StatePublisher

log = logging.getLogger(__name__)

DECISIONS_SHOWN = 10  # in the state: the page lists them
# In the state: the last minute for the page's chart (an open page keeps more itself). Sent to
# every page each round, so kept small: ~3 KB.
HISTORY_SAMPLES = 60


def thresholds_of(policy: Policy) -> dict[str, float]:
    if policy.mode == "switch":
        return {"high": policy.high, "low": policy.low}
    return {"primary_capacity": policy.primary_capacity, "high": policy.high, "low": policy.low}


class Reporter:
    def __init__(
        self,
        policy: Policy,
        *,
        actuator: str,
        target: str,
        prometheus_url: str,
        dry_run: bool,
        publisher: StatePublisher | None = None,
        ledger: Ledger | None = None,
        role: Role = Role.SINGLE,
    ) -> None:
        self.target = redact_url(target)
        self.prometheus_url = redact_url(prometheus_url)
        self.publisher = publisher
        self.ledger = ledger if ledger is not None else Ledger(100)
        self.window = ""
        self._history: deque[Sample] = deque(maxlen=HISTORY_SAMPLES)
        self.state = WatcherState(
            weights=Weights().as_dict(),  # what the manifests start with, until the first read
            role=role,
            outage_policy=policy.outage_policy,
            mode=Mode(policy.mode),
            actuator=actuator,
            target=self.target,
            dry_run=dry_run,
            thresholds=thresholds_of(policy),
        )
        self._last_reason = ""
        self._last_read_problem = ""
        self._last_routing = ""
        metrics.MODE.labels(mode=policy.mode).set(1)
        for name, value in self.state.thresholds.items():
            metrics.THRESHOLD.labels(name=name).set(value)
        metrics.READY.set(0)

    def watching(self, query: str) -> None:
        self.window = window_of(query)
        extra = {"query": query, "prometheus": self.prometheus_url, "target": self.target}
        log.info("watching", extra={**extra, "dry_run": self.state.dry_run})

    async def report(self, done: Round) -> None:
        self._reading(done)
        self._actuator(done)
        self._decision(done)
        self._metrics(done)
        self._record(done)
        self._update_state(done)
        self._routing(done)
        if self.publisher is not None:
            await self.publisher.publish(self.state)

    async def stand_by(self) -> None:
        """Another replica leads: say so on /status; the leader publishes the page's state."""
        s = self.state
        if s.role is not Role.STANDBY:
            log.info("standing by: another replica holds the lease")
        s.role, s.at, s.ready, s.not_ready_reason = Role.STANDBY, time.time(), True, ""
        metrics.READY.set(1)

    def _record(self, done: Round) -> None:
        at = time.time()
        records = records_of(
            done,
            at=at,
            thresholds=self.state.thresholds,
            window=self.window,
            dry_run=self.state.dry_run,
        )
        for record in records:
            kept = self.ledger.add(record)
            metrics.RECORDS.labels(reason=record.reason).inc()
            if kept.count == 1:
                log.info(
                    "record %s: %s",
                    record.reason,
                    record.detail,
                    extra={"reason": str(record.reason), "outcome": str(record.outcome)},
                )
        band = "override" if done.override is not None else "outage" if done.outage else ""
        reading = done.applied.decision.value
        shown = None if reading is None else round(reading, 2)
        burst = done.applied.after.burst
        self._history.append(Sample(at=round(at, 2), reading=shown, burst=burst, band=band))

    async def close(self) -> None:
        if self.publisher is not None:
            await self.publisher.close()

    def _reading(self, done: Round) -> None:
        reading = done.observation.reading
        metrics.READINGS.labels(kind=reading.kind).inc()
        if done.applied.decision.value is not None:  # usable
            if self._last_read_problem:
                log.info("readings usable again", extra={"reading": str(reading)})
            self._last_read_problem = ""
            return
        metrics.READ_ERRORS.labels(kind=reading.kind).inc()
        problem = f"{reading.kind}: {reading.detail}"
        if problem != self._last_read_problem:  # one line per new kind of trouble
            log.warning(
                "no usable reading: %s; holding the weights",
                problem,
                extra={"kind": str(reading.kind), "prometheus": self.prometheus_url},
            )
        self._last_read_problem = problem

    def _actuator(self, done: Round) -> None:
        applied = done.applied
        for conflict in applied.conflicts:
            metrics.WRITE_ERRORS.labels(kind=conflict.kind).inc()
            log.info(
                "%s changed since it was read; reading it again and deciding again",
                self.target,
                extra={"target": self.target, "cause": redact_url(conflict.detail)},
            )
        if applied.error is not None:
            self._failed(applied.call, applied.error, done.backoff)
        elif done.recovered_after:
            log.info("%s reachable again after %d failures", self.target, done.recovered_after)
        if applied.outcome is Outcome.WRITTEN:
            metrics.WRITES.inc()
            metrics.LAST_WRITE.set(time.time())
            old, new = applied.before, applied.after
            if new != old:
                self.state.last_change = LastChange(
                    at=time.time(),
                    old=old.as_dict(),
                    new=new.as_dict(),
                    decision=verb(old, new),
                    reason=applied.decision.reason,
                )

    def _failed(self, call: str, exc: ActuatorError, backoff: float) -> None:
        metrics.WRITE_ERRORS.labels(kind=exc.kind).inc()
        cause = redact_url(exc.detail)
        log.warning(
            "%s %s failed (%s): %s; holding, retrying in %.0f s",
            self.target,
            call,
            exc.kind,
            cause,
            backoff,
            extra={"target": self.target, "kind": str(exc.kind), "cause": cause},
        )

    def _decision(self, done: Round) -> None:
        obs, applied = done.observation, done.applied
        decision, old = applied.decision, applied.before
        what = verb(old, decision.weights)
        changed = what != "hold" and applied.outcome is Outcome.WRITTEN
        level = logging.INFO if changed or decision.reason != self._last_reason else logging.DEBUG
        self._last_reason = decision.reason
        log.log(
            level,
            "decision %s: %s -> %s (%s: %s)",
            what,
            old,
            decision.weights,
            decision.reason,
            decision.detail,
            extra={
                "decision": what,
                "reason": str(decision.reason),
                "reading": decision.value,
                "reading_kind": str(obs.reading.kind),
                "thresholds": self.state.thresholds,
                "old": old.as_dict(),
                "new": decision.weights.as_dict(),
                "burst_healthy": obs.burst.healthy,
            },
        )
        metrics.DECISIONS.labels(decision=what, reason=decision.reason).inc()

    def _metrics(self, done: Round) -> None:
        value = done.applied.decision.value
        if value is not None:
            metrics.REQUEST_RATE.set(value)
        for subset, weight in done.applied.after.as_dict().items():
            metrics.WEIGHT.labels(subset=subset).set(weight)
        metrics.CONSECUTIVE_FAILURES.set(done.memory.failures)
        health = done.observation.burst.healthy
        metrics.BURST_HEALTHY.set(-1 if health is None else int(health))
        metrics.READY.set(0 if done.not_ready else 1)

    def _update_state(self, done: Round) -> None:
        obs, applied = done.observation, done.applied
        s = self.state
        s.reading = applied.decision.value
        s.reading_kind = obs.reading.kind
        s.reading_detail = obs.reading.detail
        s.weights = applied.after.as_dict()
        s.decision = verb(applied.before, applied.decision.weights)
        s.reason = applied.decision.reason
        s.detail = applied.decision.detail
        s.at = time.time()
        s.ready = not done.not_ready
        s.not_ready_reason = done.not_ready
        s.read_failures = done.memory.failures
        s.write_failures = done.write_failures
        s.burst_health = {"healthy": obs.burst.healthy, "detail": obs.burst.detail}
        s.override, s.override_problem = done.override, done.override_problem
        if not done.outage:
            s.outage_since = None
        elif s.outage_since is None:
            s.outage_since = time.time()
        s.decisions = self.ledger.last(DECISIONS_SHOWN)
        s.history = list(self._history)
        s.reading_error_kind = None if s.reading is not None else obs.reading.kind
        if applied.error is not None:
            s.actuator_error_kind = applied.error.kind
            s.actuator_error = redact_url(f"{applied.call}: {applied.error.detail}")
        elif applied.outcome in (Outcome.WRITTEN, Outcome.UNCHANGED):
            s.actuator_error_kind, s.actuator_error = None, ""
        # SKIPPED (backing off after a failure): the failure stands until a call succeeds.

    def _routing(self, done: Round) -> None:
        """Whether the written weights are in force: in the state, and logged when it changes."""
        routing = done.routing
        if routing is None:
            return
        self.state.routing = routing.as_dict()
        if routing.state == self._last_routing:
            return
        self._last_routing = routing.state
        trouble = routing.state in TROUBLE
        log.log(
            logging.WARNING if trouble else logging.INFO,
            "%s is %s%s",
            routing.target,
            routing.state,
            f": {routing.detail}" if routing.detail else "",
            extra={"target": routing.target, "routing": routing.state, "cause": routing.detail},
        )
