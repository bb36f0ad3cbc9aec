"""From a committed round, the decision records it makes for the ledger (often none).

A round makes a record when the weights are to change (whatever the outcome: written, failed,
conflict, dry run) and for each transition (an override or an outage beginning or ending). A
transition that is also the reason for the change (an override applied, a fail-safe entered) is
one record, not two.
"""

from __future__ import annotations

import re

from istio_burst.core.contracts import (
    Action,
    DecisionRecord,
    Reason,
    RecordOutcome,
    RecordReason,
)
from istio_burst.watcher.decide import verb
from istio_burst.watcher.outcome import Outcome, Round

_WINDOW = re.compile(r"\[([0-9]+[smhdwy])(?::[0-9]*[smhdwy]?)?\]")

# The decision's reasons that name the record of the change they make.
_CHANGE_REASONS = {
    Reason.OVERRIDE: RecordReason.OVERRIDE_APPLIED,
    Reason.FAIL_SAFE_PRIMARY: RecordReason.FAIL_SAFE_PRIMARY,
    Reason.FAIL_SAFE_BURST: RecordReason.FAIL_SAFE_BURST,
    Reason.BURST_UNHEALTHY: RecordReason.BURST_UNHEALTHY,
    Reason.OVER_CAPACITY: RecordReason.OVERFLOW_STEP,
    Reason.UNDER_CAPACITY: RecordReason.OVERFLOW_STEP,
}

_OUTCOMES = {
    Outcome.WRITTEN: RecordOutcome.WRITTEN,
    Outcome.CONFLICT: RecordOutcome.CONFLICT,
    Outcome.FAILED: RecordOutcome.FAILED,
}


def window_of(query: str) -> str:
    """The rate window of a PromQL query (`5s` in `rate(x[5s])`), or empty if it has none."""
    found = _WINDOW.search(query)
    return found.group(1) if found else ""


def records_of(
    done: Round, *, at: float, thresholds: dict[str, float], window: str, dry_run: bool
) -> list[DecisionRecord]:
    applied, obs = done.applied, done.observation
    decision = applied.decision
    before = applied.before.as_dict()

    def record(
        action: Action,
        reason: RecordReason,
        detail: str,
        after: dict[str, int],
        outcome: RecordOutcome,
    ) -> DecisionRecord:
        error = applied.error.kind if applied.error is not None else None
        return DecisionRecord(
            at=at,
            last_at=at,
            action=action,
            reason=reason,
            detail=detail,
            reading=decision.value,
            reading_kind=obs.reading.kind,
            window=window,
            thresholds=thresholds,
            before=before,
            after=after,
            outcome=outcome,
            error_kind=error if outcome in (RecordOutcome.FAILED, RecordOutcome.CONFLICT) else None,
        )

    out: list[DecisionRecord] = []
    change: RecordReason | None = None
    if decision.weights != applied.before and applied.outcome is not Outcome.SKIPPED:
        change = _change_reason(done)
        outcome = _OUTCOMES.get(applied.outcome, RecordOutcome.NONE)
        if outcome is RecordOutcome.WRITTEN and dry_run:
            outcome = RecordOutcome.DRY_RUN
        action = verb(applied.before, decision.weights)
        detail = decision.detail
        if applied.error is not None:
            detail += f"; {applied.call} failed ({applied.error.kind})"
        out.append(record(action, change, detail, decision.weights.as_dict(), outcome))
    for transition in done.transitions:
        if transition.reason is not change:
            # Before the change it explains or accompanies (an override expired, then burst ended).
            out.insert(
                len(out) - (change is not None),
                record(
                    Action.HOLD, transition.reason, transition.detail, before, RecordOutcome.NONE
                ),
            )
    return out


def _change_reason(done: Round) -> RecordReason:
    applied = done.applied
    if done.hand_edit_undone and applied.decision.reason is not Reason.OVERRIDE:
        return RecordReason.HAND_EDIT_UNDONE
    named = _CHANGE_REASONS.get(applied.decision.reason)
    if named is not None:
        return named
    if applied.decision.weights.burst > applied.before.burst:
        return RecordReason.BURST_STARTED
    return RecordReason.BURST_ENDED
