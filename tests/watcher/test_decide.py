"""The decision function: pure, so every case is a replayed series of readings and times."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import replace

import pytest

from istio_burst.core.contracts import BURST_ONLY, PRIMARY_ONLY, Reason, Weights
from istio_burst.watcher.decide import (
    BurstHealth,
    Decision,
    Memory,
    Observation,
    Policy,
    decide,
    verb,
)
from istio_burst.watcher.readings import Reading, ReadingKind

SWITCH = Policy(mode="switch", high=15, low=10, min_dwell=5, stabilization_window=10)
OVERFLOW = Policy(
    mode="overflow",
    high=15,
    low=10,
    primary_capacity=15,
    step=10,
    tolerance=0.1,
    min_dwell=0,
    stabilization_window=10,
)

BAD_READINGS = [
    Reading(ReadingKind.NAN_INF, detail="NaN"),
    Reading(ReadingKind.NAN_INF, detail="+Inf"),
    Reading(ReadingKind.MULTIPLE_SERIES, detail="2 series"),
    Reading(ReadingKind.UNREACHABLE, detail="connection refused"),
    Reading(ReadingKind.TIMEOUT, detail="ReadTimeout"),
    Reading(ReadingKind.HTTP_ERROR, detail="HTTP 503"),
    Reading(ReadingKind.HTTP_ERROR, detail="HTTP 400: bad_data"),
    Reading(ReadingKind.MALFORMED, detail="not JSON"),
]


def replay(
    policy: Policy, observations: Iterable[Observation], start: Weights = PRIMARY_ONLY
) -> list[tuple[Weights, Decision]]:
    """Decide over a series as if every change were written at once: (weights before, decision)."""
    memory, current = Memory(), start
    out: list[tuple[Weights, Decision]] = []
    for obs in observations:
        decision = decide(policy, memory, obs, current)
        out.append((current, decision))
        memory = decision.memory
        if decision.weights != current:
            memory = memory.after_change(obs.at, current, decision.weights)
            current = decision.weights
    return out


def rate(value: float) -> Reading:
    return Reading(ReadingKind.NUMBER, value=value)


def series(values: list[float], start: float = 0.0, every: float = 1.0) -> list[Observation]:
    return [Observation(start + i * every, rate(v)) for i, v in enumerate(values)]


def weights_after(
    policy: Policy, values: list[float], start: Weights = PRIMARY_ONLY
) -> list[Weights]:
    return [d.weights for _, d in replay(policy, series(values), start)]


def changes(run: list[tuple[Weights, Decision]]) -> int:
    return sum(1 for before, d in run if d.weights != before)


@pytest.mark.parametrize(
    ("current", "value", "expected", "reason"),
    [
        (PRIMARY_ONLY, 16, BURST_ONLY, Reason.ABOVE_HIGH),
        (PRIMARY_ONLY, 15, PRIMARY_ONLY, Reason.BETWEEN_THRESHOLDS),  # "above" is strict
        (PRIMARY_ONLY, 12, PRIMARY_ONLY, Reason.BETWEEN_THRESHOLDS),
        (PRIMARY_ONLY, 3, PRIMARY_ONLY, Reason.BELOW_LOW),
        (BURST_ONLY, 12, BURST_ONLY, Reason.BETWEEN_THRESHOLDS),
        (BURST_ONLY, 30, BURST_ONLY, Reason.ABOVE_HIGH),
        (BURST_ONLY, 3, BURST_ONLY, Reason.STABILIZING),  # first low reading: window starts
        (Weights(50, 50), 12, Weights(50, 50), Reason.BETWEEN_THRESHOLDS),
        (Weights(50, 50), 20, BURST_ONLY, Reason.ABOVE_HIGH),
    ],
)
def test_switch_mode_single_readings(
    current: Weights, value: float, expected: Weights, reason: Reason
) -> None:
    decision = decide(SWITCH, Memory(), Observation(100.0, rate(value)), current)
    assert (decision.weights, decision.reason) == (expected, reason)
    assert decision.value == value


def test_switch_step_up_is_immediate_and_step_down_waits_the_whole_window() -> None:
    # 5 req/s, a step to 30 at t=3, back to 3 at t=10, held low for 15 s.
    values = [5.0] * 3 + [30.0] * 7 + [3.0] * 15
    weights = weights_after(SWITCH, values)
    assert weights[:3] == [PRIMARY_ONLY] * 3
    assert weights[3] == BURST_ONLY, "no delay on the way up"
    first_low = 10
    back = weights.index(PRIMARY_ONLY, first_low)
    assert back == first_low + 10, "back to primary exactly when the 10 s window is full"


def test_a_single_high_reading_inside_the_window_restarts_it() -> None:
    values = [30.0] + [3.0] * 8 + [12.0] + [3.0] * 12
    weights = weights_after(SWITCH, values)
    assert weights[9] == BURST_ONLY
    back = weights.index(PRIMARY_ONLY)
    assert back == 10 + 10, "the window counts again from the first low reading after 12"


def test_min_dwell_holds_a_change_right_after_another() -> None:
    policy = replace(SWITCH, stabilization_window=0, min_dwell=5)
    values = [30.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    run = replay(policy, series(values))
    assert run[1][1].reason is Reason.DWELL and run[1][1].weights == BURST_ONLY
    assert [d.weights for _, d in run].index(PRIMARY_ONLY) == 5


@pytest.mark.parametrize("bad", BAD_READINGS, ids=lambda r: f"{r.kind}-{r.detail}")
@pytest.mark.parametrize("current", [PRIMARY_ONLY, BURST_ONLY, Weights(70, 30)], ids=str)
def test_a_bad_reading_is_never_read_as_zero(bad: Reading, current: Weights) -> None:
    # Bursting, low for 9 s of a 10 s window: a reading read as 0 would complete it.
    memory = Memory(low_since=0.0)
    for policy in (SWITCH, OVERFLOW):
        decision = decide(policy, memory, Observation(9.5, bad), current)
        assert decision.weights == current
        assert decision.reason is Reason.BAD_READING
        assert decision.value is None
        assert decision.memory.failures == 1
        assert decision.memory.low_since is None, "a gap in the readings restarts the window"


def test_an_empty_result_counts_as_the_configured_value() -> None:
    empty = Reading(ReadingKind.EMPTY)
    as_zero = decide(SWITCH, Memory(), Observation(0, empty), BURST_ONLY)
    assert as_zero.value == 0 and as_zero.reason is Reason.STABILIZING
    strict = replace(SWITCH, empty_value=None)
    as_error = decide(strict, Memory(), Observation(0, empty), BURST_ONLY)
    assert as_error.reason is Reason.BAD_READING and as_error.weights == BURST_ONLY
    as_high = decide(replace(SWITCH, empty_value=20), Memory(), Observation(0, empty), PRIMARY_ONLY)
    assert as_high.weights == BURST_ONLY


def test_fail_safe_hold_keeps_the_weights_through_any_number_of_failures() -> None:
    timeout = Reading(ReadingKind.TIMEOUT)
    run = replay(SWITCH, [Observation(t, timeout) for t in range(50)], start=BURST_ONLY)
    assert all(d.weights == BURST_ONLY for _, d in run)
    assert run[-1][1].memory.failures == 50


def test_outage_policy_primary_acts_after_outage_after_seconds_of_bad_readings() -> None:
    policy = replace(SWITCH, outage_policy="primary", outage_after=2)
    bad = Reading(ReadingKind.UNREACHABLE)
    obs = [Observation(0, bad), Observation(1, bad), Observation(2, rate(12)), Observation(3, bad)]
    obs += [Observation(4, bad), Observation(5, bad)]
    run = replay(policy, obs, start=BURST_ONLY)
    assert [d.weights for _, d in run[:5]] == [BURST_ONLY] * 5, "a good reading resets the time"
    assert run[5][1].weights == PRIMARY_ONLY
    assert run[5][1].reason is Reason.FAIL_SAFE_PRIMARY


def test_unhealthy_burst_sends_traffic_back_at_once_and_backs_off() -> None:
    policy = replace(SWITCH, burst_backoff=20, min_dwell=5)
    sick = BurstHealth(False, "error ratio 0.9")
    well = BurstHealth(True)
    obs = [Observation(0, rate(30), well), Observation(1, rate(30), sick)]
    obs += [Observation(t, rate(30), well) for t in range(2, 25)]
    run = replay(policy, obs)
    assert run[0][1].weights == BURST_ONLY
    assert run[1][1].weights == PRIMARY_ONLY, "no dwell, no window: straight back"
    assert run[1][1].reason is Reason.BURST_UNHEALTHY
    held = [d for _, d in run[2:20]]
    assert all(d.weights == PRIMARY_ONLY and d.reason is Reason.BURST_BACKOFF for d in held)
    assert run[21][1].weights == BURST_ONLY, "tries burst again once the back-off is over"


def test_never_bursts_into_an_unhealthy_side_even_with_no_backoff() -> None:
    policy = replace(SWITCH, burst_backoff=0)
    sick = BurstHealth(False, "connection refused")
    decision = decide(policy, Memory(), Observation(0, rate(100), sick), PRIMARY_ONLY)
    assert decision.weights == PRIMARY_ONLY
    assert decision.reason is Reason.BURST_UNHEALTHY


# A burst side that fails whenever it gets traffic, and looks healthy again once it gets none (a
# missing burst Service under istiod: the route is refused at 0/100, accepted again at 100/0).
BACKOFF = replace(SWITCH, min_dwell=0, burst_backoff=10, burst_backoff_max=1000)
SICK = BurstHealth(False, "route refused: BackendNotFound")
WELL = BurstHealth(True)


def fails_under_traffic(at: float, current: Weights) -> BurstHealth:
    return SICK if current.burst > 0 else WELL


def live(
    policy: Policy,
    health: Callable[[float, Weights], BurstHealth],
    seconds: int,
    value: Callable[[float], float] = lambda at: 30.0,
) -> list[tuple[float, Weights, Decision]]:
    """One round a second where the burst side's health depends on the weights in force."""
    memory, current = Memory(), PRIMARY_ONLY
    out: list[tuple[float, Weights, Decision]] = []
    for at in map(float, range(seconds)):
        decision = decide(
            policy, memory, Observation(at, rate(value(at)), health(at, current)), current
        )
        out.append((at, current, decision))
        memory = decision.memory
        if decision.weights != current:
            memory = memory.after_change(at, current, decision.weights)
            current = decision.weights
    return out


def tries(run: list[tuple[float, Weights, Decision]]) -> list[float]:
    """When traffic was sent to burst."""
    return [at for at, before, d in run if d.weights.burst > before.burst]


def waits(run: list[tuple[float, Weights, Decision]]) -> list[float]:
    """For each try after the first: seconds since burst was last reported unhealthy."""
    out, sick_at = [], None
    for at, before, d in run:
        if d.weights.burst > before.burst and sick_at is not None:
            out.append(at - sick_at)
        if d.memory.unhealthy:
            sick_at = at
    return out


def test_the_backoff_doubles_with_each_failure_in_a_row() -> None:
    run = live(BACKOFF, fails_under_traffic, 200)
    assert waits(run)[:4] == [10, 20, 40, 80]
    held = [d for _, _, d in run if d.reason is Reason.BURST_BACKOFF]
    assert any(
        "backing off 40 s (3rd failure in a row, doubled each time)" in d.detail for d in held
    )
    unhealthy = [d.detail for _, _, d in run if d.reason is Reason.BURST_UNHEALTHY]
    assert unhealthy[0].endswith("all traffic back to primary; backing off 10 s")
    assert unhealthy[1].endswith("backing off 20 s (2nd failure in a row, doubled each time)")


def test_the_backoff_grows_no_further_than_its_cap() -> None:
    policy = replace(BACKOFF, burst_backoff_max=50)
    run = live(policy, fails_under_traffic, 400)
    assert waits(run)[:7] == [10, 20, 40, 50, 50, 50, 50]
    last = [d for _, _, d in run if d.reason is Reason.BURST_BACKOFF][-1]
    assert "backing off 50 s" in last.detail and "the most" in last.detail


def test_one_long_unhealthy_stretch_is_one_failure_and_the_backoff_counts_from_its_end() -> None:
    # Burst's readiness fails for 100 s while the load asks for burst, then passes.
    def down_until_100(at: float, current: Weights) -> BurstHealth:
        return SICK if at < 100 or current.burst > 0 else WELL

    run = live(BACKOFF, down_until_100, 300)
    first, second = tries(run)[:2]
    assert first == 99 + 10, "BURST_BACKOFF after the last unhealthy round, not doubled 100 times"
    assert second == first + 1 + 20, "the next failure is only the second in a row"
    assert all(d.weights == PRIMARY_ONLY for at, _, d in run if at < first)


def test_the_count_starts_again_after_burst_carried_traffic_healthy_for_a_full_backoff() -> None:
    # Burst fails at its first try (t=0, found at t=1), carries traffic healthy from its second
    # (t=11, first round on burst t=12), then fails from t=`fail` on.
    def scripted(fail: float) -> Callable[[float, Weights], BurstHealth]:
        def health(at: float, current: Weights) -> BurstHealth:
            failing = at < 5 or at >= fail
            return SICK if failing and current.burst > 0 else WELL

        return health

    # Healthy on burst for 10 s (t=12 to t=22, BURST_BACKOFF): the next failure is a first again.
    reset = live(BACKOFF, scripted(fail=23), 120)
    assert waits(reset)[:3] == [10, 10, 20]
    # For 9 s only: it is the second failure in a row.
    kept = live(BACKOFF, scripted(fail=21), 120)
    assert waits(kept)[:3] == [10, 20, 40]


def test_the_count_does_not_start_again_while_burst_carries_no_traffic() -> None:
    # Back on primary because the load fell, burst looks healthy, but it proves nothing.
    run = live(BACKOFF, fails_under_traffic, 200, value=lambda at: 3.0 if 20 <= at < 60 else 30.0)
    assert waits(run)[:3] == [10, 20 + 28, 40]  # the load was low from t=20 to t=60
    assert run[-1][2].memory.unhealthy_episodes >= 3


def test_no_backoff_still_means_none_however_often_burst_fails() -> None:
    policy = replace(BACKOFF, burst_backoff=0, burst_backoff_max=0)
    run = live(policy, fails_under_traffic, 40)
    assert len(tries(run)) == 20 and set(waits(run)) == {1}, "tried again the very next round"
    assert all(d.reason is not Reason.BURST_BACKOFF for _, _, d in run)
    assert run[1][2].detail.endswith("all traffic back to primary; no back-off")


def test_unknown_health_does_not_block() -> None:
    decision = decide(SWITCH, Memory(), Observation(0, rate(30), BurstHealth(None)), PRIMARY_ONLY)
    assert decision.weights == BURST_ONLY


def oscillation(centre: float, seconds: int, period: float, seed: int) -> list[float]:
    """±20 % around `centre`: a sine of the given period plus a little noise."""
    rng = random.Random(seed)
    return [
        max(0.0, centre * (1 + 0.2 * math.sin(2 * math.pi * t / period)) + rng.uniform(-0.3, 0.3))
        for t in range(seconds)
    ]


@pytest.mark.parametrize("period", [4.0, 10.0, 30.0, 60.0])
@pytest.mark.parametrize(
    ("policy", "centre", "start"),
    [
        (SWITCH, 15.0, PRIMARY_ONLY),  # around HIGH, starting on primary
        (SWITCH, 10.0, BURST_ONLY),  # around LOW, while bursting
        (SWITCH, 12.5, PRIMARY_ONLY),
        (OVERFLOW, 15.0, PRIMARY_ONLY),  # around the primary's capacity
        (OVERFLOW, 30.0, Weights(50, 50)),
    ],
    ids=["switch-high", "switch-low", "switch-mid", "overflow-capacity", "overflow-half"],
)
def test_two_minutes_oscillating_20_percent_make_at_most_one_change(
    policy: Policy, centre: float, start: Weights, period: float
) -> None:
    run = replay(policy, series(oscillation(centre, 120, period, seed=int(period))), start)
    assert changes(run) <= 1, [str(d.weights) for _, d in run]


def test_overflow_steps_one_step_per_change_and_only_the_excess_goes_to_burst() -> None:
    weights = weights_after(OVERFLOW, [60.0] * 12)
    bursts = [w.burst for w in weights]
    assert bursts[:7] == [10, 20, 30, 40, 50, 60, 70]
    # 60 req/s with primary capped at 15 (+10 %): burst settles where primary gets <= 16.5.
    assert bursts[-1] == 80 and 60 * (100 - 80) / 100 <= 16.5
    assert all(b - a <= 10 for a, b in itertools.pairwise(bursts))


def test_overflow_steps_back_after_the_window_when_primary_has_room_again() -> None:
    start = Weights(50, 50)
    weights = weights_after(OVERFLOW, [6.0] * 40, start)
    assert weights[9] == start, "still inside the stabilization window"
    assert [w.burst for w in weights[10:16]] == [40, 30, 20, 10, 0, 0], (
        "after a full window low, one step per round (no new window for each step)"
    )


def test_overflow_respects_min_dwell_between_steps() -> None:
    policy = replace(OVERFLOW, min_dwell=3)
    bursts = [w.burst for w in weights_after(policy, [60.0] * 10)]
    assert bursts == [10, 10, 10, 20, 20, 20, 30, 30, 30, 40]


def test_overflow_moves_an_off_grid_weight_onto_the_grid() -> None:
    decision = decide(OVERFLOW, Memory(), Observation(0, rate(60)), Weights(55, 45))
    assert decision.weights == Weights(50, 50)


@pytest.mark.parametrize("policy", [SWITCH, OVERFLOW], ids=["switch", "overflow"])
def test_weights_are_always_whole_and_sum_to_100(policy: Policy) -> None:
    rng = random.Random(7)
    kinds = [rate(rng.uniform(0, 80)) for _ in range(300)] + BAD_READINGS * 5
    rng.shuffle(kinds)
    health = [BurstHealth(None), BurstHealth(True), BurstHealth(False, "x")]
    obs = [Observation(t * 0.5, r, rng.choice(health)) for t, r in enumerate(kinds)]
    for _, decision in replay(replace(policy, min_dwell=0), obs):
        w = decision.weights
        assert isinstance(w.primary, int) and isinstance(w.burst, int)
        assert w.primary + w.burst == 100 and w.primary >= 0 and w.burst >= 0


def test_verb_names_the_direction() -> None:
    assert verb(PRIMARY_ONLY, BURST_ONLY) == "to_burst"
    assert verb(PRIMARY_ONLY, Weights(90, 10)) == "more_burst"
    assert verb(Weights(60, 40), Weights(70, 30)) == "less_burst"
    assert verb(BURST_ONLY, PRIMARY_ONLY) == "to_primary"
    assert verb(BURST_ONLY, BURST_ONLY) == "hold"
