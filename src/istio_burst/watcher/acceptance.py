"""Is what the watcher wrote in force? The data plane's own report, followed across rounds.

After a write the weights are `pending` until a read says the data plane applied them. A route
that cannot be trusted with burst traffic (its data plane refused it, or a write stayed pending
past the deadline) counts as burst being unhealthy: the decision then sends everything back to
primary and keeps burst off until the route is healthy again (and its back-off after).

Actuators whose data plane reports nothing (`unverified`) never hold anything back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from istio_burst.watcher.actuators import UNVERIFIED, Acceptance, AcceptanceState
from istio_burst.watcher.decide import BurstHealth

TIMED_OUT = "not_accepted"  # pending past the deadline
TROUBLE = (AcceptanceState.REFUSED, TIMED_OUT)


@dataclass(frozen=True, slots=True)
class Routing:
    """What /status shows under `routing`: the object written and whether it is in force."""

    target: str
    state: str  # an AcceptanceState, or TIMED_OUT
    detail: str = ""
    pending_for: float = 0.0  # seconds since the write (or first sight) still pending

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AcceptanceTracker:
    """Follows the actuator's `Acceptance` from round to round; the loop owns one."""

    def __init__(self, target: str, deadline: float) -> None:
        self.target = target
        self.deadline = deadline
        self.last: Acceptance = UNVERIFIED
        self.pending_since: float | None = None
        # Why burst is kept off: the route was refused or not accepted in time, and no read has
        # shown it accepted since (a write back to primary does not make it healthy).
        self.held = ""

    def routing(self, at: float) -> Routing:
        state, detail = str(self.last.state), self.last.detail
        waited = at - self.pending_since if self.pending_since is not None else 0.0
        if self.last.state is AcceptanceState.PENDING and waited > self.deadline:
            state = TIMED_OUT
            detail = f"not accepted within {self.deadline:g} s ({detail})"
        return Routing(self.target, state, detail, round(waited, 1))

    def route_health(self, at: float) -> BurstHealth | None:
        """BurstHealth(False) while the route cannot be trusted with burst; else None."""
        routing = self.routing(at)
        if routing.state in TROUBLE:
            return BurstHealth(False, f"{self.target} {routing.state}: {routing.detail}")
        if self.held:
            return BurstHealth(False, f"{self.held}; burst waits until the route is accepted")
        return None

    def commit(self, at: float, seen: Acceptance | None, *, wrote: bool) -> Routing:
        """Take in one round: what its read reported (None: no read), and whether it wrote."""
        if seen is not None:
            if seen.state is not AcceptanceState.PENDING:
                self.pending_since = None
            elif self.pending_since is None:  # pending without our write: someone else's edit
                self.pending_since = at
            self.last = seen
        verdict = self.routing(at)
        if verdict.state in TROUBLE:
            self.held = f"{self.target} {verdict.state}: {verdict.detail}"
        elif verdict.state in (AcceptanceState.APPLIED, AcceptanceState.UNVERIFIED):
            self.held = ""
        if wrote and seen is not None and seen.verified:
            # The read predates the write: what it reported is about the old weights.
            self.last = Acceptance(AcceptanceState.PENDING, "written; waiting for the data plane")
            self.pending_since = at
        return self.routing(at)


def with_route_health(burst: BurstHealth, route: BurstHealth | None) -> BurstHealth:
    """The burst side's health, made unhealthy by a route that cannot carry burst traffic."""
    if route is None:
        return burst
    if burst.healthy is False:
        return BurstHealth(False, f"{burst.detail}; {route.detail}")
    return route
