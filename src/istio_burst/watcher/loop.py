"""The daemon: every INTERVAL one round of read → decide → apply, then commit, then report.

A round: take an observation (the rate, the burst side's health); take the current weights (read
from the actuator, or the last known when the read fails or the actuator is being backed off);
`decide`; apply, which ends in one `Outcome`. A CONFLICT (changed since it was read) repeats
read → decide → write at once, up to CONFLICT_RETRIES times. Then the round is committed once:
the decision's memory (plus the change, if one was written), the weights now in force, and the
actuator's failure count and back-off. The reporter gets the committed round; nothing flows back.

Nothing that comes in (a reading, a health answer, an API error) ends the loop: each call is
bounded by timeouts, every failure is classified and counted, and an unexpected exception is
logged and the next round goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from istio_burst.core.contracts import WatcherState, Weights
from istio_burst.watcher.actuators import Actuator, ActuatorError, ActuatorErrorKind
from istio_burst.watcher.decide import NO_HEALTH_SIGNAL, Memory, Observation, Policy, decide
from istio_burst.watcher.health import BurstHealthCheck
from istio_burst.watcher.outcome import Applied, Outcome, Round
from istio_burst.watcher.prometheus import PrometheusSource
from istio_burst.watcher.reporter import Reporter

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 3  # read, decide and write this many times at most in one round


class Watcher:
    def __init__(
        self,
        policy: Policy,
        source: PrometheusSource,
        actuator: Actuator,
        reporter: Reporter,
        *,
        query: str,
        interval: float,
        max_backoff: float,
        health: BurstHealthCheck | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.source = source
        self.actuator = actuator
        self.reporter = reporter
        self.query = query
        self.interval = interval
        self.max_backoff = max_backoff
        self.health = health
        self.clock = clock
        self.memory = Memory()
        self.known = Weights()  # the weights last read from (or written to) the actuator
        self.write_failures = 0  # failed actuator calls in a row
        self.retry_at = 0.0  # no actuator call before this (back-off after failures)
        self.rounds = 0
        self.last_reading_kind = ""

    @property
    def state(self) -> WatcherState:
        return self.reporter.state

    async def run(self, stop: asyncio.Event) -> None:
        self.reporter.watching(self.query)
        while not stop.is_set():
            started = self.clock()
            try:
                await self.round()
            except Exception:  # a bug must not stop the watching; say so loudly
                log.exception("watcher round failed unexpectedly; going on")
            left = self.interval - (self.clock() - started)
            if left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=left)

    async def round(self) -> None:
        obs = await self._observe()
        applied = await self._read_decide_apply(obs)
        await self.reporter.report(self._commit(obs, applied))

    async def _observe(self) -> Observation:
        at = self.clock()
        reading = await self.source.read(self.query)
        burst = await self.health.check() if self.health is not None else NO_HEALTH_SIGNAL
        return Observation(at, reading, burst)

    async def _read_decide_apply(self, obs: Observation) -> Applied:
        if obs.at < self.retry_at:
            # Backing off the actuator: still decide (readings, windows go on), write nothing.
            decision = decide(self.policy, self.memory, obs, self.known)
            return Applied(Outcome.SKIPPED, self.known, decision)
        conflicts: list[ActuatorError] = []
        while True:
            applied = await self._attempt(obs)
            if applied.outcome is not Outcome.CONFLICT or len(conflicts) + 1 >= CONFLICT_RETRIES:
                return replace(applied, conflicts=tuple(conflicts))
            assert applied.error is not None
            conflicts.append(applied.error)

    async def _attempt(self, obs: Observation) -> Applied:
        try:
            seen = await self.actuator.read()
        except ActuatorError as exc:
            decision = decide(self.policy, self.memory, obs, self.known)
            return Applied(Outcome.FAILED, self.known, decision, exc, "read")
        decision = decide(self.policy, self.memory, obs, seen.weights)
        if decision.weights == seen.weights and seen.exact:
            return Applied(Outcome.UNCHANGED, seen.weights, decision)
        try:
            await self.actuator.write(seen, decision.weights)
        except ActuatorError as exc:
            conflict = exc.kind is ActuatorErrorKind.CONFLICT
            outcome = Outcome.CONFLICT if conflict else Outcome.FAILED
            return Applied(outcome, seen.weights, decision, exc, "write")
        return Applied(Outcome.WRITTEN, seen.weights, decision)

    def _commit(self, obs: Observation, applied: Applied) -> Round:
        memory = applied.decision.memory
        if applied.outcome is Outcome.WRITTEN and applied.after != applied.before:
            memory = memory.after_change(obs.at, applied.before, applied.after)
        self.memory = memory
        self.known = applied.after
        self.rounds += 1
        self.last_reading_kind = obs.reading.kind
        recovered_after, backoff = 0, 0.0
        if applied.outcome in (Outcome.WRITTEN, Outcome.UNCHANGED):
            recovered_after, self.write_failures, self.retry_at = self.write_failures, 0, 0.0
        elif applied.outcome in (Outcome.FAILED, Outcome.CONFLICT):
            self.write_failures += 1
            backoff = min(self.max_backoff, self.interval * 2 ** (self.write_failures - 1))
            self.retry_at = obs.at + backoff
        return Round(
            obs,
            applied,
            memory,
            self.write_failures,
            backoff,
            recovered_after,
            self.not_ready_reason(),
        )

    def not_ready_reason(self) -> str:
        """Empty while ready: readings and writes succeed (fewer than MAX_FAILURES in a row)."""
        limit = self.policy.max_failures
        if self.rounds == 0:
            return "no reading yet"
        if self.memory.failures >= limit:
            return f"{self.memory.failures} bad readings in a row ({self.last_reading_kind})"
        if self.write_failures >= limit:
            return f"{self.write_failures} failed calls to {self.actuator.target} in a row"
        return ""
