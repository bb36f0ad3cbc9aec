"""The daemon: every INTERVAL one round of read → decide → apply, then commit, then report.

A round: take an observation (the rate, the burst side's health); take the current weights (read
from the actuator, or the last known when the read fails or the actuator is being backed off);
`decide`; apply, which ends in one `Outcome`. A CONFLICT (changed since it was read) repeats
read → decide → write at once, up to CONFLICT_RETRIES times. Then the round is committed once:
the decision's memory (plus the change, if one was written), the weights now in force, and the
actuator's failure count and back-off. The reporter gets the committed round; nothing flows back.
What the data plane reports about the route (`acceptance.AcceptanceTracker`) is committed too: a
route it refused, or did not accept in time, makes the next observation's burst unhealthy.

The override in force comes from the routed object's annotations (read with the weights) or,
locally, from Redis; outages (readings unusable for OUTAGE_AFTER) and overrides that begin or end
are committed with the round as transitions, for the ledger. With leader election, a replica that
does not hold the Lease runs no rounds: it stands by, and starts afresh (a new memory, the weights
as read) when it becomes the leader.

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
from typing import Protocol

from istio_burst.core.contracts import RecordReason, Role, WatcherState, Weights
from istio_burst.watcher.acceptance import AcceptanceTracker, Routing, with_route_health
from istio_burst.watcher.actuators import Actuator, ActuatorError, ActuatorErrorKind, Snapshot
from istio_burst.watcher.decide import (
    NO_HEALTH_SIGNAL,
    BurstHealth,
    Memory,
    Observation,
    Policy,
    decide,
    in_outage,
)
from istio_burst.watcher.health import BurstHealthCheck
from istio_burst.watcher.outcome import Applied, Outcome, Round, Transition
from istio_burst.watcher.overrides import OverrideTracker, RawOverride, from_annotations, in_force
from istio_burst.watcher.prometheus import PrometheusSource
from istio_burst.watcher.reporter import Reporter

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 3  # read, decide and write this many times at most in one round

OUTAGE_STARTED = {
    "hold": RecordReason.HELD_STALE_METRICS,
    "primary": RecordReason.FAIL_SAFE_PRIMARY,
    "burst": RecordReason.FAIL_SAFE_BURST,
}


class LocalOverrides(Protocol):
    """Where a local watcher finds an override set by `istio-burst watcher override`."""

    async def read(self) -> RawOverride | None: ...

    async def close(self) -> None: ...


class Election(Protocol):
    def is_leader(self) -> bool: ...

    async def run(self, stop: asyncio.Event) -> None: ...

    async def release(self) -> None: ...

    async def close(self) -> None: ...


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
        local_overrides: LocalOverrides | None = None,
        election: Election | None = None,
        acceptance_deadline: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
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
        self.wall_clock = wall_clock
        self.local_overrides = local_overrides
        self.election = election
        self.overrides = OverrideTracker()
        self.raw_override: RawOverride | None = None  # as last read
        self.outage = False
        self.known_is_read = False  # `known` came from a read or a write, not the default
        self.memory = Memory()
        self.known = Weights()  # the weights last read from (or written to) the actuator
        self.write_failures = 0  # failed actuator calls in a row
        self.retry_at = 0.0  # no actuator call before this (back-off after failures)
        self.rounds = 0
        self.last_reading_kind = ""
        self.acceptance = AcceptanceTracker(actuator.target, acceptance_deadline)

    @property
    def state(self) -> WatcherState:
        return self.reporter.state

    async def run(self, stop: asyncio.Event) -> None:
        self.reporter.watching(self.query)
        while not stop.is_set():
            started = self.clock()
            try:
                if self.election is None or self.election.is_leader():
                    await self.round()
                else:
                    await self.stand_by()
            except Exception:  # a bug must not stop the watching; say so loudly
                log.exception("watcher round failed unexpectedly; going on")
            left = self.interval - (self.clock() - started)
            if left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=left)

    async def stand_by(self) -> None:
        """Another replica leads: write nothing; lead afresh from what is read if elected."""
        self.memory, self.known_is_read, self.outage = Memory(), False, False
        self.write_failures, self.retry_at = 0, 0.0
        await self.reporter.stand_by()

    async def round(self) -> None:
        if self.election is not None:
            self.reporter.state.role = Role.LEADER
        obs = await self._observe()
        applied = await self._read_decide_apply(obs)
        await self.reporter.report(self._commit(obs, applied))

    async def _observe(self) -> Observation:
        at = self.clock()
        reading = await self.source.read(self.query)
        burst = await self.health.check() if self.health is not None else NO_HEALTH_SIGNAL
        if self.local_overrides is not None:
            self.raw_override = await self.local_overrides.read()
        return Observation(at, reading, self._with_route_health(at, burst))

    def _with_route_health(self, at: float, burst: BurstHealth) -> BurstHealth:
        """A route its data plane refused, or did not accept in time, cannot carry burst."""
        return with_route_health(burst, self.acceptance.route_health(at))

    def _with_override(self, obs: Observation, seen: Snapshot | None) -> Observation:
        if seen is not None and self.local_overrides is None:
            self.raw_override = from_annotations(seen.annotations)
        return replace(obs, override=in_force(self.raw_override, self.wall_clock()))

    async def _read_decide_apply(self, obs: Observation) -> Applied:
        if obs.at < self.retry_at:
            # Backing off the actuator: still decide (readings, windows go on), write nothing.
            decision = decide(self.policy, self.memory, self._with_override(obs, None), self.known)
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
            decision = decide(self.policy, self.memory, self._with_override(obs, None), self.known)
            return Applied(Outcome.FAILED, self.known, decision, exc, "read")
        decision = decide(self.policy, self.memory, self._with_override(obs, seen), seen.weights)
        accepted = seen.acceptance
        if decision.weights == seen.weights and seen.exact:
            return Applied(Outcome.UNCHANGED, seen.weights, decision, acceptance=accepted)
        if self.election is not None and not self.election.is_leader():
            return Applied(Outcome.SKIPPED, seen.weights, decision)  # lost the lease meanwhile
        try:
            await self.actuator.write(seen, decision.weights)
        except ActuatorError as exc:
            conflict = exc.kind is ActuatorErrorKind.CONFLICT
            outcome = Outcome.CONFLICT if conflict else Outcome.FAILED
            return Applied(outcome, seen.weights, decision, exc, "write", acceptance=accepted)
        return Applied(Outcome.WRITTEN, seen.weights, decision, acceptance=accepted)

    def _commit(self, obs: Observation, applied: Applied) -> Round:
        memory = applied.decision.memory
        if applied.outcome is Outcome.WRITTEN and applied.after != applied.before:
            memory = memory.after_change(obs.at, applied.before, applied.after)
        hand_edit_undone = (
            applied.outcome is Outcome.WRITTEN
            and self.known_is_read
            and applied.before != self.known
            and applied.after == self.known
        )
        transitions = self.overrides.update(self.raw_override, self.wall_clock())
        transitions += self._outage_transitions(obs, applied)
        self.memory = memory
        self.known = applied.after
        self.known_is_read = self.known_is_read or applied.outcome is not Outcome.FAILED
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
            tuple(transitions),
            hand_edit_undone,
            self.overrides.active,
            self.overrides.problem,
            self.outage,
            routing=self._commit_acceptance(obs.at, applied),
        )

    def _commit_acceptance(self, at: float, applied: Applied) -> Routing:
        wrote = applied.outcome is Outcome.WRITTEN
        return self.acceptance.commit(at, applied.acceptance, wrote=wrote)

    def _outage_transitions(self, obs: Observation, applied: Applied) -> list[Transition]:
        was = self.outage
        self.outage = in_outage(self.policy, applied.decision.memory, obs.at)
        if self.outage and not was:
            reason = OUTAGE_STARTED[self.policy.outage_policy]
            return [Transition(reason, applied.decision.detail)]
        if was and not self.outage:
            since = self.memory.bad_since
            blind = f" after {obs.at - since:.0f} s" if since is not None else ""
            return [Transition(RecordReason.METRICS_RESUMED, f"usable readings again{blind}")]
        return []

    def not_ready_reason(self) -> str:
        """Empty while ready: readings and writes succeed (fewer than MAX_FAILURES in a row)."""
        limit = self.policy.max_failures
        if self.election is not None and not self.election.is_leader():
            return ""  # standing by is ready: it takes over when the leader goes
        if self.rounds == 0:
            return "no reading yet"
        if self.memory.failures >= limit:
            return f"{self.memory.failures} bad readings in a row ({self.last_reading_kind})"
        if self.write_failures >= limit:
            return f"{self.write_failures} failed calls to {self.actuator.target} in a row"
        return ""
