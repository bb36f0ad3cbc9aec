"""What one round of the watcher did: the record the loop commits from and the reporter reports."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from istio_burst.core.contracts import Override, RecordReason, Weights
from istio_burst.watcher.acceptance import Routing
from istio_burst.watcher.actuators import Acceptance, ActuatorError
from istio_burst.watcher.decide import Decision, Memory, Observation


class Outcome(StrEnum):
    WRITTEN = "written"  # the decision's weights were written (or logged, in a dry run)
    UNCHANGED = "unchanged"  # already in force: nothing to write
    CONFLICT = "conflict"  # changed under us in every attempt of the round
    FAILED = "failed"  # the read or the write failed
    SKIPPED = "skipped"  # backing off the actuator after failures: nothing read or written


@dataclass(frozen=True, slots=True)
class Applied:
    """One read → decide → apply."""

    outcome: Outcome
    before: Weights  # what the decision started from: as read, or the last known
    decision: Decision
    error: ActuatorError | None = None  # for FAILED and CONFLICT
    call: str = ""  # which call failed: "read" or "write"
    conflicts: tuple[ActuatorError, ...] = ()  # earlier attempts of this round, decided again
    acceptance: Acceptance | None = None  # what the read reported about the data plane

    @property
    def after(self) -> Weights:
        return self.decision.weights if self.outcome is Outcome.WRITTEN else self.before


@dataclass(frozen=True, slots=True)
class Transition:
    """Something that began or ended this round: an override, an outage."""

    reason: RecordReason
    detail: str


@dataclass(frozen=True, slots=True)
class Round:
    """A whole round, after the loop committed it."""

    observation: Observation
    applied: Applied
    memory: Memory
    write_failures: int  # failed actuator calls in a row, this round's included
    backoff: float  # seconds without actuator calls now (0: none)
    recovered_after: int  # failures in a row this round's success ended (0: none)
    not_ready: str  # why the watcher is not ready; empty when it is
    transitions: tuple[Transition, ...] = ()
    hand_edit_undone: bool = False  # someone changed the weights; this round wrote them back
    override: Override | None = None  # in force this round
    override_problem: str = ""  # why the override given was refused
    outage: bool = False  # readings unusable for OUTAGE_AFTER: the outage policy acts
    routing: Routing | None = None  # whether what was written is in force
