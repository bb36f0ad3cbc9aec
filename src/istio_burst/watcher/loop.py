"""The daemon: every INTERVAL read the rate, decide, apply; report what happened and why.

Nothing that comes in (a reading, a health answer, an API error) ends the loop: each round is
bounded by timeouts, every failure is classified and counted, and an unexpected exception is
logged and the next round goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from istio_burst.core.contracts import Weights
from istio_burst.watcher import metrics
from istio_burst.watcher.actuators import Actuator, ActuatorError, ActuatorErrorKind, Snapshot
from istio_burst.watcher.decide import (
    NO_HEALTH_SIGNAL,
    Decision,
    Memory,
    Observation,
    Policy,
    decide,
    verb,
)
from istio_burst.watcher.health import BurstHealthCheck
from istio_burst.watcher.prometheus import PrometheusSource
from istio_burst.watcher.readings import Reading, ReadingKind
from istio_burst.watcher.settings import WatcherSettings
from istio_burst.watcher.state import LastChange, StatePublisher, WatcherState

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 3  # re-read and decide again this many times in one round


def policy_from(settings: WatcherSettings) -> Policy:
    empty = settings.empty_result_value
    return Policy(
        mode=settings.mode,
        high=settings.high,
        low=settings.low,
        primary_capacity=settings.primary_capacity,
        step=settings.step,
        tolerance=settings.tolerance,
        min_dwell=settings.min_dwell,
        stabilization_window=settings.stabilization_window,
        fail_safe=settings.fail_safe,
        max_failures=settings.max_failures,
        empty_value=None if empty == "error" else float(empty),
        burst_backoff=settings.burst_backoff,
    )


class Watcher:
    def __init__(
        self,
        settings: WatcherSettings,
        source: PrometheusSource,
        actuator: Actuator,
        *,
        health: BurstHealthCheck | None,
        publisher: StatePublisher | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.policy = policy_from(settings)
        self.source = source
        self.actuator = actuator
        self.health = health
        self.publisher = publisher
        self.clock = clock
        self.memory = Memory()
        self.known = Weights()  # last weights read from (or written to) the actuator
        self.write_failures = 0
        self.retry_at = 0.0  # no actuator call before this (backoff after failures)
        self.rounds = 0
        self._applied = False  # whether this round wrote a change
        self._last_reason = ""
        self._last_read_problem = ""
        self.state = WatcherState(
            mode=settings.mode,
            actuator=actuator.name,
            target=actuator.target,
            dry_run=settings.dry_run,
            thresholds=self._thresholds(),
        )
        metrics.MODE.labels(mode=settings.mode).set(1)
        for name, value in self.state.thresholds.items():
            metrics.THRESHOLD.labels(name=name).set(value)
        metrics.READY.set(0)

    def _thresholds(self) -> dict[str, float]:
        s = self.settings
        if s.mode == "switch":
            return {"high": s.high, "low": s.low}
        return {"primary_capacity": s.primary_capacity, "high": s.high, "low": s.low}

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "watching",
            extra={
                "query": self.settings.query,
                "prometheus": self.settings.prometheus_url,
                "target": self.actuator.target,
                "dry_run": self.settings.dry_run,
            },
        )
        while not stop.is_set():
            started = self.clock()
            try:
                await self.round()
            except Exception:  # a bug must not stop the watching; say so loudly
                log.exception("watcher round failed unexpectedly; going on")
            left = self.settings.interval - (self.clock() - started)
            if left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=left)

    async def round(self) -> None:
        at = self.clock()
        reading = await self.source.read(self.settings.query)
        self._record_reading(reading)
        burst = await self.health.check() if self.health is not None else NO_HEALTH_SIGNAL
        obs = Observation(at, reading, burst)
        self._applied = False
        decision, old = await self._decide_and_apply(obs)
        self.rounds += 1
        self._report(obs, decision, old)
        if self.publisher is not None:
            await self.publisher.publish(self.state)

    async def _decide_and_apply(self, obs: Observation) -> tuple[Decision, Weights]:
        if obs.at < self.retry_at:
            # Backing off the actuator: still decide (readings, windows go on), write nothing.
            decision = decide(self.policy, self.memory, obs, self.known)
            self.memory = decision.memory
            return decision, self.known
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                snapshot = await self.actuator.read()
            except ActuatorError as exc:
                self._write_failed("read", exc, obs.at)
                decision = decide(self.policy, self.memory, obs, self.known)
                self.memory = decision.memory
                return decision, self.known
            self.known = snapshot.weights
            decision = decide(self.policy, self.memory, obs, snapshot.weights)
            if decision.weights == snapshot.weights and snapshot.exact:
                self.memory = decision.memory
                self._write_succeeded()
                return decision, snapshot.weights
            try:
                await self.actuator.write(snapshot, decision.weights)
            except ActuatorError as exc:
                if exc.kind is ActuatorErrorKind.CONFLICT and attempt < CONFLICT_RETRIES:
                    log.info(
                        "%s changed since it was read; reading it again and deciding again",
                        self.actuator.target,
                        extra={"target": self.actuator.target, "cause": exc.detail},
                    )
                    metrics.WRITE_ERRORS.labels(kind=exc.kind).inc()
                    continue
                self._write_failed("write", exc, obs.at)
                self.memory = decision.memory
                return decision, snapshot.weights
            self._written(obs, snapshot, decision)
            return decision, snapshot.weights
        raise AssertionError("unreachable: the last attempt returns")

    def _written(self, obs: Observation, snapshot: Snapshot, decision: Decision) -> None:
        old, new = snapshot.weights, decision.weights
        self.memory = decision.memory
        if new != old:
            self.memory = self.memory.after_change(obs.at, old, new)
            self.state.last_change = LastChange(
                at=time.time(),
                old=old.as_dict(),
                new=new.as_dict(),
                decision=verb(old, new),
                reason=decision.reason,
            )
        self.known = new
        self._applied = True
        metrics.WRITES.inc()
        metrics.LAST_WRITE.set(time.time())
        self._write_succeeded()

    def _write_succeeded(self) -> None:
        if self.write_failures:
            log.info(
                "%s reachable again after %d failures", self.actuator.target, self.write_failures
            )
        self.write_failures = 0
        self.retry_at = 0.0

    def _write_failed(self, what: str, exc: ActuatorError, at: float) -> None:
        self.write_failures += 1
        backoff = min(
            self.settings.max_backoff, self.settings.interval * 2 ** (self.write_failures - 1)
        )
        self.retry_at = at + backoff
        metrics.WRITE_ERRORS.labels(kind=exc.kind).inc()
        log.warning(
            "%s %s failed (%s): %s; holding, retrying in %.0f s",
            self.actuator.target,
            what,
            exc.kind,
            exc.detail,
            backoff,
            extra={"target": self.actuator.target, "kind": str(exc.kind), "cause": exc.detail},
        )

    def _record_reading(self, reading: Reading) -> None:
        metrics.READINGS.labels(kind=reading.kind).inc()
        usable = reading.kind is ReadingKind.NUMBER or (
            reading.kind is ReadingKind.EMPTY and self.policy.empty_value is not None
        )
        if usable:
            if self._last_read_problem:
                log.info("readings usable again", extra={"reading": str(reading)})
            self._last_read_problem = ""
            return
        metrics.READ_ERRORS.labels(kind=reading.kind).inc()
        problem = f"{reading.kind}: {reading.detail}"
        if problem != self._last_read_problem:  # one line per new kind of trouble, not per second
            log.warning(
                "no usable reading: %s; holding the weights",
                problem,
                extra={"kind": str(reading.kind), "prometheus": self.settings.prometheus_url},
            )
        self._last_read_problem = problem

    def _report(self, obs: Observation, decision: Decision, old: Weights) -> None:
        new = decision.weights if self._applied else old
        what = verb(old, decision.weights)
        self._log_decision(obs, decision, old, what)
        metrics.DECISIONS.labels(decision=what, reason=decision.reason).inc()
        if decision.value is not None:
            metrics.REQUEST_RATE.set(decision.value)
        for subset, weight in new.as_dict().items():
            metrics.WEIGHT.labels(subset=subset).set(weight)
        metrics.CONSECUTIVE_FAILURES.set(self.memory.failures)
        health = obs.burst.healthy
        metrics.BURST_HEALTHY.set(-1 if health is None else int(health))
        not_ready = self.not_ready_reason()
        metrics.READY.set(0 if not_ready else 1)

        s = self.state
        s.reading = decision.value
        s.reading_kind = str(obs.reading.kind)
        s.reading_detail = obs.reading.detail
        s.weights = new.as_dict()
        s.decision = what
        s.reason = str(decision.reason)
        s.detail = decision.detail
        s.at = time.time()
        s.ready = not not_ready
        s.not_ready_reason = not_ready
        s.read_failures = self.memory.failures
        s.write_failures = self.write_failures
        s.burst_health = {"healthy": health, "detail": obs.burst.detail}

    def _log_decision(self, obs: Observation, decision: Decision, old: Weights, what: str) -> None:
        # Every change at INFO; a hold (or a change that could not be written) only when its
        # reason differs from the last round's, so a steady state does not log every second.
        changed = what != "hold" and self._applied
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

    def not_ready_reason(self) -> str:
        """Empty while ready: readings and writes succeed (fewer than MAX_FAILURES in a row)."""
        limit = self.settings.max_failures
        if self.rounds == 0:
            return "no reading yet"
        if self.memory.failures >= limit:
            return f"{self.memory.failures} bad readings in a row ({self.state.reading_kind})"
        if self.write_failures >= limit:
            return f"{self.write_failures} failed calls to {self.actuator.target} in a row"
        return ""
