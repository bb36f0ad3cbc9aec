"""The decision, as pure code: from what the watcher has seen and the time, the weights it wants.

No I/O and no clock: the loop passes the time in, so every case can be replayed in a test.
`Memory` is all the history a decision needs (the readings so far, boiled down); the loop keeps
it between rounds and calls `Memory.after_change` once a change is really written.

Rules, in order:
1. The burst side reported unhealthy: while any traffic goes there, everything back to primary
   at once (no dwell, no window: safety first); no traffic to burst for the back-off, counted
   from the last round it was reported unhealthy. The back-off grows like Kubernetes'
   CrashLoopBackOff: BURST_BACKOFF for the first unhealthy episode, doubled for each further one
   (BURST_BACKOFF x 2^(n-1) for the n-th), at most BURST_BACKOFF_MAX. An episode is a run of
   rounds reported unhealthy; any round not reported unhealthy (healthy or no evidence) ends it,
   so one long unhealthy stretch is one episode. The count starts again once burst has carried
   traffic (the weights in force give it a share) with no unhealthy report for BURST_BACKOFF
   seconds in a row.
2. An operator's override (primary, burst or pause) decides, whatever the readings say; only
   rule 1 still keeps traffic off a burst side known to be unhealthy.
3. A reading that is not a number is never read as a rate: hold the weights. Once readings have
   been unusable for OUTAGE_AFTER seconds the outage policy acts: `hold` (keep holding),
   `primary` or `burst` (everything to that side).
4. The load decides (`switch` or `overflow`, below); a move back towards primary needs the rate
   low for the whole stabilization window; no load-driven change within MIN_DWELL of the last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from istio_burst.core.contracts import (
    BURST_ONLY,
    PRIMARY_ONLY,
    Action,
    Override,
    OverrideTarget,
    Reason,
    Weights,
)
from istio_burst.watcher.readings import Reading, ReadingKind


@dataclass(frozen=True, slots=True)
class Policy:
    mode: Literal["switch", "overflow"] = "switch"
    high: float = 15.0
    low: float = 10.0
    primary_capacity: float = 15.0
    step: int = 10
    tolerance: float = 0.1
    min_dwell: float = 5.0
    stabilization_window: float = 10.0
    outage_policy: Literal["hold", "primary", "burst"] = "hold"
    outage_after: float = 3.0  # seconds of unusable readings before the outage policy acts
    max_failures: int = 3
    empty_value: float | None = 0.0  # what an empty result stands for; None: a bad reading
    burst_backoff: float = 30.0
    burst_backoff_max: float = 600.0  # the most the back-off grows to (not below burst_backoff)

    def backoff(self, episodes: int) -> float:
        """Seconds burst is kept off after its `episodes`-th unhealthy episode in a row."""
        doublings = min(max(episodes - 1, 0), 64)  # 2**64 x anything is past any sane cap
        return min(self.burst_backoff * (1 << doublings), self.burst_backoff_max)


@dataclass(frozen=True, slots=True)
class BurstHealth:
    healthy: bool | None  # None: no evidence either way (no check set, or no traffic to judge)
    detail: str = ""


NO_HEALTH_SIGNAL = BurstHealth(None)


@dataclass(frozen=True, slots=True)
class Observation:
    at: float  # seconds on a monotonic clock
    reading: Reading
    burst: BurstHealth = NO_HEALTH_SIGNAL
    override: Override | None = None  # in force (valid, not expired)


@dataclass(frozen=True, slots=True)
class Memory:
    failures: int = 0  # bad readings in a row
    bad_since: float | None = None  # when the current run of bad readings began
    low_since: float | None = None  # start of the current run of "low enough to step back"
    last_change_at: float | None = None
    backoff_until: float | None = None  # no traffic to burst before this
    unhealthy_episodes: int = 0  # in a row, with no healthy stretch on burst between them
    unhealthy: bool = False  # the last round reported burst unhealthy (an episode is running)
    carried_since: float | None = None  # start of burst's current run carrying traffic, healthy

    def after_change(self, at: float, old: Weights, new: Weights) -> Memory:
        # A step back towards primary keeps the low run: once the rate has been low for the
        # whole window, the following steps back need only the dwell time, not a new window.
        low_since = self.low_since if new.burst < old.burst else None
        return replace(self, last_change_at=at, low_since=low_since)

    def backing_off(self, at: float) -> bool:
        """Whether burst is still in its back-off after being unhealthy."""
        return self.backoff_until is not None and at < self.backoff_until

    def after_burst_health(
        self, policy: Policy, at: float, healthy: bool | None, current: Weights
    ) -> Memory:
        """Take in one round's burst health: episodes, back-off and the run that resets them."""
        if healthy is False:
            episodes = self.unhealthy_episodes + (0 if self.unhealthy else 1)
            return replace(
                self,
                unhealthy=True,
                unhealthy_episodes=episodes,
                backoff_until=at + policy.backoff(episodes),
                carried_since=None,
            )
        if current.burst == 0:
            return replace(self, unhealthy=False, carried_since=None)
        since = at if self.carried_since is None else self.carried_since
        episodes = 0 if at - since >= policy.burst_backoff else self.unhealthy_episodes
        return replace(self, unhealthy=False, carried_since=since, unhealthy_episodes=episodes)


@dataclass(frozen=True, slots=True)
class Decision:
    weights: Weights
    reason: Reason
    detail: str
    memory: Memory
    value: float | None  # the req/s the decision used; None when the reading was unusable


def verb(old: Weights, new: Weights) -> Action:
    """What a decision does to the weights, for logs, metrics and the page."""
    if new.burst > old.burst:
        return Action.TO_BURST if new.burst == 100 else Action.MORE_BURST
    if new.burst < old.burst:
        return Action.TO_PRIMARY if new.burst == 0 else Action.LESS_BURST
    return Action.HOLD


def usable_value(policy: Policy, reading: Reading) -> float | None:
    if reading.kind is ReadingKind.NUMBER:
        return reading.value
    if reading.kind is ReadingKind.EMPTY:
        return policy.empty_value
    return None


def decide(policy: Policy, memory: Memory, obs: Observation, current: Weights) -> Decision:
    at = obs.at
    memory = memory.after_burst_health(policy, at, obs.burst.healthy, current)
    if obs.burst.healthy is False and current.burst > 0:
        return Decision(
            PRIMARY_ONLY,
            Reason.BURST_UNHEALTHY,
            f"burst side unhealthy ({obs.burst.detail}): all traffic back to primary; "
            + backoff_text(policy, memory.unhealthy_episodes),
            replace(memory, low_since=None),
            usable_value(policy, obs.reading),
        )

    value = usable_value(policy, obs.reading)
    if value is None:
        bad_since = at if memory.bad_since is None else memory.bad_since
        memory = replace(memory, failures=memory.failures + 1, bad_since=bad_since)
    else:
        memory = replace(memory, failures=0, bad_since=None)
    if obs.override is not None:
        return _overridden(obs, obs.override, memory, current, value)
    if value is None:
        return _bad_reading(policy, memory, obs, current)

    load_rule = _switch if policy.mode == "switch" else _overflow
    target, reason, detail, memory = load_rule(policy, memory, at, value, current)
    if target != current:
        held = _held_back(policy, memory, obs, current, target)
        if held is not None:
            reason, why = held
            target, detail = current, f"{detail}; {why}"
    return Decision(target, reason, detail, memory, value)


def backoff_text(policy: Policy, episodes: int) -> str:
    """The back-off and why it is that long, for the page and the ledger."""
    seconds = policy.backoff(episodes)
    if seconds <= 0:
        return "no back-off"
    text = f"backing off {seconds:g} s"
    if episodes <= 1:
        return text
    grown = "the most" if seconds == policy.burst_backoff_max else "doubled each time"
    return f"{text} ({_ordinal(episodes)} failure in a row, {grown})"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def in_outage(policy: Policy, memory: Memory, at: float) -> bool:
    """Readings have been unusable for OUTAGE_AFTER seconds: the outage policy acts."""
    return memory.bad_since is not None and at - memory.bad_since >= policy.outage_after


def _overridden(
    obs: Observation, override: Override, memory: Memory, current: Weights, value: float | None
) -> Decision:
    memory = replace(memory, low_since=None)  # the window starts afresh when the override ends
    detail = f"override {override.target} ({override.source or 'operator'})"
    if override.target is OverrideTarget.PRIMARY:
        return Decision(PRIMARY_ONLY, Reason.OVERRIDE, detail, memory, value)
    if override.target is OverrideTarget.BURST and current != BURST_ONLY:
        unhealthy = obs.burst.healthy is False or memory.backing_off(obs.at)
        if unhealthy:
            why = f"{detail}, but burst is unhealthy: holding {current}"
            return Decision(current, Reason.BURST_UNHEALTHY, why, memory, value)
        return Decision(BURST_ONLY, Reason.OVERRIDE, detail, memory, value)
    return Decision(current, Reason.OVERRIDE, f"{detail}: holding {current}", memory, value)


def _bad_reading(policy: Policy, memory: Memory, obs: Observation, current: Weights) -> Decision:
    memory = replace(memory, low_since=None)
    reading = obs.reading
    if in_outage(policy, memory, obs.at):
        assert memory.bad_since is not None
        blind = f"no usable reading for {obs.at - memory.bad_since:.0f} s ({reading})"
        if policy.outage_policy == "primary" and current != PRIMARY_ONLY:
            detail = f"{blind}: outage policy primary"
            return Decision(PRIMARY_ONLY, Reason.FAIL_SAFE_PRIMARY, detail, memory, None)
        backing_off = memory.backing_off(obs.at)
        if policy.outage_policy == "burst" and current != BURST_ONLY and not backing_off:
            detail = f"{blind}: outage policy burst"
            return Decision(BURST_ONLY, Reason.FAIL_SAFE_BURST, detail, memory, None)
    detail = f"no usable rate ({reading}); holding {current}"
    return Decision(current, Reason.BAD_READING, detail, memory, None)


def _held_back(
    policy: Policy, memory: Memory, obs: Observation, current: Weights, target: Weights
) -> tuple[Reason, str] | None:
    """Why a change the load asks for must wait, if it must."""
    at = obs.at
    if target.burst > current.burst:
        if obs.burst.healthy is False:
            return Reason.BURST_UNHEALTHY, f"but burst is unhealthy ({obs.burst.detail})"
        if memory.backing_off(at):
            assert memory.backoff_until is not None
            left = memory.backoff_until - at
            backing_off = backoff_text(policy, memory.unhealthy_episodes)
            return (
                Reason.BURST_BACKOFF,
                f"but burst was unhealthy: {backing_off}, {left:.0f} s more",
            )
    if memory.last_change_at is not None and at - memory.last_change_at < policy.min_dwell:
        left = policy.min_dwell - (at - memory.last_change_at)
        return Reason.DWELL, f"waiting {left:.1f} s of minimum dwell"
    return None


_Step = tuple[Weights, Reason, str, Memory]


def _switch(policy: Policy, memory: Memory, at: float, value: float, current: Weights) -> _Step:
    if value > policy.high:
        detail = f"{value:g} req/s above HIGH {policy.high:g}"
        return BURST_ONLY, Reason.ABOVE_HIGH, detail, replace(memory, low_since=None)
    if value >= policy.low:
        detail = f"{value:g} req/s between LOW {policy.low:g} and HIGH {policy.high:g}"
        return current, Reason.BETWEEN_THRESHOLDS, detail, replace(memory, low_since=None)
    if current.burst == 0:
        detail = f"{value:g} req/s below LOW {policy.low:g}"
        return current, Reason.BELOW_LOW, detail, replace(memory, low_since=None)
    detail = f"{value:g} req/s below LOW {policy.low:g}"
    return _after_window(
        policy,
        memory,
        at,
        current=current,
        target=PRIMARY_ONLY,
        reason=Reason.LOW_FOR_WINDOW,
        detail=detail,
    )


def _overflow(policy: Policy, memory: Memory, at: float, value: float, current: Weights) -> _Step:
    step = policy.step
    ceiling = policy.primary_capacity * (1 + policy.tolerance)
    # Stepping back needs the same headroom as switch mode's LOW under HIGH, so that load
    # wavering around the capacity does not move the weights up and down.
    floor = policy.primary_capacity * policy.low / policy.high

    def primary_share(burst: int) -> float:
        return value * (100 - burst) / 100

    burst = current.burst
    if primary_share(burst) > ceiling:
        more = min(100, (burst // step + 1) * step)
        detail = (
            f"{value:g} req/s: primary would get {primary_share(burst):.1f} req/s, over its "
            f"capacity {policy.primary_capacity:g} (+{policy.tolerance:.0%})"
        )
        target = Weights(100 - more, more)
        return target, Reason.OVER_CAPACITY, detail, replace(memory, low_since=None)
    less = max(0, (math.ceil(burst / step) - 1) * step)
    if burst == 0 or primary_share(less) > floor:
        detail = f"{value:g} req/s: primary gets {primary_share(burst):.1f} req/s, within capacity"
        return current, Reason.WITHIN_CAPACITY, detail, replace(memory, low_since=None)
    detail = f"{value:g} req/s: primary would get {primary_share(less):.1f} req/s at {less}% burst"
    return _after_window(
        policy,
        memory,
        at,
        current=current,
        target=Weights(100 - less, less),
        reason=Reason.UNDER_CAPACITY,
        detail=detail,
    )


def _after_window(
    policy: Policy,
    memory: Memory,
    at: float,
    *,
    current: Weights,
    target: Weights,
    reason: Reason,
    detail: str,
) -> _Step:
    """Move towards primary only once the rate has been low for the whole window."""
    since = memory.low_since if memory.low_since is not None else at
    memory = replace(memory, low_since=since)
    waited = at - since
    if waited >= policy.stabilization_window:
        return target, reason, f"{detail} for {waited:.0f} s", memory
    detail = f"{detail} for {waited:.0f} of {policy.stabilization_window:g} s"
    return current, Reason.STABILIZING, detail, memory
