"""Where the weights are applied: an Istio VirtualService, a Gateway API HTTPRoute, or HAProxy for
the local demo.

Every actuator reads a `Snapshot` and writes against it: the write fails with a CONFLICT if the
weights changed since that read, so a concurrent edit is never silently overwritten. A snapshot
also says whether the data plane reports the object as read in force (`Acceptance`): a write is
only known to be applied once a later read says APPLIED.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

from istio_burst.core.contracts import ActuatorErrorKind, Weights

__all__ = ["Actuator", "ActuatorError", "ActuatorErrorKind", "DryRun", "Snapshot"]

log = logging.getLogger(__name__)


class ActuatorError(Exception):
    def __init__(self, kind: ActuatorErrorKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class AcceptanceState(StrEnum):
    APPLIED = "applied"  # the data plane reports this version of the object in force
    PENDING = "pending"  # not (yet) reported in force for this version
    REFUSED = "refused"  # the data plane reports it cannot apply this version (detail says why)
    UNVERIFIED = "unverified"  # the data plane reports nothing: in force once written, assumed


@dataclass(frozen=True, slots=True)
class Acceptance:
    """What the data plane reports about the object as read."""

    state: AcceptanceState = AcceptanceState.UNVERIFIED
    detail: str = ""

    @property
    def verified(self) -> bool:
        """Whether this actuator's data plane reports at all (a write then waits for APPLIED)."""
        return self.state is not AcceptanceState.UNVERIFIED


UNVERIFIED = Acceptance()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The weights as read, plus what the write needs to detect a change since (opaque)."""

    weights: Weights
    token: object = None
    exact: bool = True  # False: stored in another form (missing, unnormalised): rewrite it
    acceptance: Acceptance = UNVERIFIED
    annotations: dict[str, str] = field(default_factory=dict)  # the routed object's, if any


class Actuator(Protocol):
    name: str  # "istio", "gateway-api" or "haproxy"
    target: str  # the object written, for logs: "virtualservice default/worker-virtual-service"

    async def read(self) -> Snapshot: ...

    async def write(self, seen: Snapshot, desired: Weights) -> None: ...

    async def close(self) -> None: ...


class DryRun:
    """Reads for real, writes nothing: logs the write it would make and pretends it did."""

    def __init__(self, inner: Actuator) -> None:
        self.inner = inner
        self.name = inner.name
        self.target = inner.target
        self._pretend: Weights | None = None

    async def read(self) -> Snapshot:
        snapshot = await self.inner.read()
        if self._pretend is None:
            return snapshot
        return replace(snapshot, weights=self._pretend, exact=True)

    async def write(self, seen: Snapshot, desired: Weights) -> None:
        log.info(
            "dry run: would set %s to %s (now %s); nothing written",
            self.target,
            desired,
            seen.weights,
            extra={"target": self.target, "old": str(seen.weights), "new": str(desired)},
        )
        self._pretend = desired

    async def close(self) -> None:
        await self.inner.close()
