"""The ledger's pure parts: overrides parsed and tracked, records made from rounds, repeats
counted, and the decision under an override or an outage."""

from __future__ import annotations

from dataclasses import replace

import pytest

from istio_burst.core.contracts import (
    BURST_ONLY,
    PRIMARY_ONLY,
    Override,
    OverrideTarget,
    Reason,
    RecordOutcome,
    RecordReason,
)
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind
from istio_burst.watcher.decide import BurstHealth, Memory, Observation, Policy, decide
from istio_burst.watcher.ledger import Ledger
from istio_burst.watcher.outcome import Applied, Outcome, Round, Transition
from istio_burst.watcher.overrides import (
    OverrideError,
    OverrideTracker,
    RawOverride,
    from_annotations,
    parse_override,
)
from istio_burst.watcher.readings import Reading, ReadingKind
from istio_burst.watcher.records import records_of, window_of

NOON = 1_796_558_400.0  # 2026-12-06T12:00:00Z


def test_an_override_with_its_time_parses() -> None:
    raw = RawOverride("burst", "2026-12-06T12:00:00Z")
    assert parse_override(raw) == Override(
        target=OverrideTarget.BURST, until=NOON, source="annotation"
    )
    assert parse_override(RawOverride("pause")).until is None
    assert parse_override(RawOverride("primary", "2026-12-06T13:00:00+01:00")).until == NOON


@pytest.mark.parametrize(
    ("value", "until", "says"),
    [
        ("Burst", "", "'Burst' is not one of primary, burst, pause"),
        ("", "", "'' is not one of"),
        ("burst", "tomorrow", "'tomorrow' is not an RFC 3339 time"),
        ("burst", "2026-12-06T12:00:00", "has no UTC offset"),
    ],
)
def test_a_malformed_override_says_why(value: str, until: str, says: str) -> None:
    with pytest.raises(OverrideError, match=says):
        parse_override(RawOverride(value, until))


def test_annotations_give_the_override_and_nothing_else() -> None:
    assert from_annotations({"kubectl.kubernetes.io/last-applied-configuration": "{}"}) is None
    assert from_annotations({"istio-burst.dev/override": "pause"}) == RawOverride("pause")


def test_the_tracker_says_each_transition_once() -> None:
    tracker = OverrideTracker()
    burst = RawOverride("burst", "2026-12-06T12:00:00Z", "local")
    applied = tracker.update(burst, NOON - 10)
    assert [t.reason for t in applied] == [RecordReason.OVERRIDE_APPLIED]
    assert tracker.update(burst, NOON - 5) == [], "in force: nothing new"
    assert [t.reason for t in tracker.update(burst, NOON)] == [RecordReason.OVERRIDE_EXPIRED]
    assert tracker.active is None
    assert tracker.update(burst, NOON + 5) == [], "expired once, not every round"
    bad = RawOverride("sideways")
    assert [t.reason for t in tracker.update(bad, NOON)] == [RecordReason.OVERRIDE_REFUSED]
    assert tracker.update(bad, NOON + 1) == [] and "sideways" in tracker.problem
    tracker.update(RawOverride("pause"), NOON)
    cleared = tracker.update(None, NOON)
    assert [t.reason for t in cleared] == [RecordReason.OVERRIDE_CLEARED]
    assert tracker.problem == ""


POLICY = Policy(min_dwell=0, stabilization_window=0, outage_after=3)


def rate(value: float) -> Reading:
    return Reading(ReadingKind.NUMBER, value=value)


def test_an_override_decides_whatever_the_load() -> None:
    pin = Override(target=OverrideTarget.PRIMARY, source="local")
    decision = decide(POLICY, Memory(), Observation(0, rate(30), override=pin), BURST_ONLY)
    assert (decision.weights, decision.reason) == (PRIMARY_ONLY, Reason.OVERRIDE)
    pause = Override(target=OverrideTarget.PAUSE)
    held = decide(POLICY, Memory(), Observation(0, rate(30), override=pause), PRIMARY_ONLY)
    assert (held.weights, held.reason) == (PRIMARY_ONLY, Reason.OVERRIDE)
    burst = Override(target=OverrideTarget.BURST)
    sick = Observation(0, rate(3), BurstHealth(False, "down"), override=burst)
    assert decide(POLICY, Memory(), sick, PRIMARY_ONLY).weights == PRIMARY_ONLY


def test_the_outage_policy_acts_only_after_outage_after_seconds() -> None:
    blind = Reading(ReadingKind.UNREACHABLE)
    policy = replace(POLICY, outage_policy="burst")
    memory = Memory()
    for at in (0.0, 1.0, 2.0):
        decision = decide(policy, memory, Observation(at, blind), PRIMARY_ONLY)
        assert decision.weights == PRIMARY_ONLY and decision.reason is Reason.BAD_READING
        memory = decision.memory
    opened = decide(policy, memory, Observation(3.0, blind), PRIMARY_ONLY)
    assert (opened.weights, opened.reason) == (BURST_ONLY, Reason.FAIL_SAFE_BURST)


def round_of(applied: Applied, *transitions: Transition) -> Round:
    obs = Observation(0, rate(30))
    return Round(obs, applied, applied.decision.memory, 0, 0, 0, "", tuple(transitions))


def test_a_change_and_its_transition_are_one_record() -> None:
    pin = Override(target=OverrideTarget.BURST)
    decision = decide(POLICY, Memory(), Observation(0, rate(3), override=pin), PRIMARY_ONLY)
    applied = Applied(Outcome.WRITTEN, PRIMARY_ONLY, decision)
    done = round_of(applied, Transition(RecordReason.OVERRIDE_APPLIED, "override burst"))
    (record,) = records_of(done, at=NOON, thresholds={"high": 15}, window="5s", dry_run=False)
    assert record.reason is RecordReason.OVERRIDE_APPLIED
    assert (record.before, record.after) == (PRIMARY_ONLY.as_dict(), BURST_ONLY.as_dict())
    assert record.outcome is RecordOutcome.WRITTEN and record.window == "5s"


def test_a_failed_write_repeats_into_one_record() -> None:
    decision = decide(POLICY, Memory(), Observation(0, rate(30)), PRIMARY_ONLY)
    error = ActuatorError(ActuatorErrorKind.UNREACHABLE, "connection refused")
    applied = Applied(Outcome.FAILED, PRIMARY_ONLY, decision, error, "write")
    ledger = Ledger(10)
    for second in range(3):
        (record,) = records_of(
            round_of(applied), at=NOON + second, thresholds={}, window="", dry_run=False
        )
        assert record.reason is RecordReason.BURST_STARTED and record.error_kind == "unreachable"
        ledger.add(record)
    (kept,) = ledger.last(10)
    assert (kept.count, kept.at, kept.last_at) == (3, NOON, NOON + 2)
    dry = records_of(
        round_of(Applied(Outcome.WRITTEN, PRIMARY_ONLY, decision)),
        at=NOON,
        thresholds={},
        window="",
        dry_run=True,
    )
    assert dry[0].outcome is RecordOutcome.DRY_RUN


def test_the_rate_window_is_read_from_the_query() -> None:
    assert window_of('sum(rate(istio_requests_total{reporter="source"}[1m]))') == "1m"
    assert window_of("min_over_time(x[3s:1s])") == "3s"
    assert window_of("up") == ""
