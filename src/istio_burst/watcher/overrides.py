"""An operator's override: pin the traffic to primary or burst, or pause the watcher, without
editing the routing spec (which GitOps tools would revert).

In Kubernetes it is two annotations on the routed object, read with the weights each round:
`istio-burst.dev/override: primary|burst|pause` and, optionally,
`istio-burst.dev/override-until: <RFC 3339 time>`. Locally, `istio-burst watcher override`
stores the same two strings on Redis (LOCAL_OVERRIDE_KEY), where the watcher reads them.

`OverrideTracker` turns what was read each round into the override in force and the ledger's
transitions: applied, expired, cleared, or refused (malformed: ignored, and said so once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from istio_burst.core.contracts import Override, OverrideTarget, RecordReason
from istio_burst.watcher.outcome import Transition

ANNOTATION = "istio-burst.dev/override"
UNTIL_ANNOTATION = "istio-burst.dev/override-until"
LOCAL_OVERRIDE_KEY = "istio-burst:watcher:override"  # JSON {"override": ..., "until": ...}
ANNOTATION_SOURCE = "annotation"
LOCAL_SOURCE = "local"


class OverrideError(ValueError):
    """A malformed override: the text says what is wrong."""


@dataclass(frozen=True, slots=True)
class RawOverride:
    """The two strings as the operator wrote them, and where."""

    value: str
    until: str = ""
    source: str = ANNOTATION_SOURCE


def from_annotations(annotations: dict[str, str]) -> RawOverride | None:
    if ANNOTATION not in annotations and UNTIL_ANNOTATION not in annotations:
        return None
    return RawOverride(annotations.get(ANNOTATION, ""), annotations.get(UNTIL_ANNOTATION, ""))


def from_local(raw: bytes | str | None) -> RawOverride | None:
    """What `istio-burst watcher override` stored on Redis (None: no override set)."""
    if raw is None:
        return None
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return RawOverride(repr(raw)[:80], "", LOCAL_SOURCE)
    return RawOverride(str(data.get("override", "")), str(data.get("until") or ""), LOCAL_SOURCE)


def local_value(target: OverrideTarget, until: datetime | None) -> bytes:
    """The Redis value for an override set locally (the CLI writes it, `from_local` reads it)."""
    return orjson.dumps({"override": target, "until": until.isoformat() if until else ""})


def parse_until(text: str) -> float:
    """An RFC 3339 time (with its offset or Z) as Unix time, or OverrideError."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise OverrideError(f"{UNTIL_ANNOTATION}: {text!r} is not an RFC 3339 time") from exc
    if when.tzinfo is None:
        raise OverrideError(
            f"{UNTIL_ANNOTATION}: {text!r} has no UTC offset (write e.g. 2026-12-06T14:00:00Z)"
        )
    return when.timestamp()


def in_force(raw: RawOverride | None, now: float) -> Override | None:
    """The override `raw` puts in force at Unix time `now`: none if malformed or expired."""
    if raw is None:
        return None
    try:
        override = parse_override(raw)
    except OverrideError:
        return None
    return None if override.until is not None and override.until <= now else override


def parse_override(raw: RawOverride) -> Override:
    """The override the operator meant, or OverrideError saying why it is refused."""
    value = raw.value.strip()
    try:
        target = OverrideTarget(value)
    except ValueError:
        choices = ", ".join(t.value for t in OverrideTarget)
        raise OverrideError(f"{ANNOTATION}: {value[:80]!r} is not one of {choices}") from None
    until = parse_until(raw.until) if raw.until.strip() else None
    return Override(target=target, until=until, source=raw.source)


class OverrideTracker:
    """The override in force, round by round, and what changed about it."""

    def __init__(self) -> None:
        self.active: Override | None = None
        self.problem = ""  # why the override given is refused; empty when none is
        self._expired: RawOverride | None = None  # announced as expired already

    def update(self, raw: RawOverride | None, now: float) -> list[Transition]:
        """`raw`: what was read this round; `now`: Unix time."""
        before = self.active
        self.active, problem, expired = None, "", False
        if raw is not None:
            try:
                override = parse_override(raw)
            except OverrideError as exc:
                problem = str(exc)
            else:
                expired = override.until is not None and override.until <= now
                self.active = None if expired else override
        out: list[Transition] = []
        if problem and problem != self.problem:
            out.append(Transition(RecordReason.OVERRIDE_REFUSED, f"{problem}; ignored"))
        self.problem = problem
        if self.active is not None and self.active != before:
            out.append(Transition(RecordReason.OVERRIDE_APPLIED, describe(self.active)))
        if expired and raw is not None and raw != self._expired:
            out.append(Transition(RecordReason.OVERRIDE_EXPIRED, f"override {raw.value} expired"))
            self._expired = raw
        elif self.active is None and before is not None and not expired:
            out.append(Transition(RecordReason.OVERRIDE_CLEARED, f"{describe(before)} removed"))
        if not expired:
            self._expired = None
        return out


def describe(override: Override) -> str:
    """`override burst (local) until ...`, as the ledger says it."""
    return f"override {summary(override)}"


def summary(override: Override) -> str:
    """`burst (local) until ...`: the target, where it was set, and when it ends."""
    until = ""
    if override.until is not None:
        until = " until " + datetime.fromtimestamp(override.until, UTC).isoformat(
            timespec="seconds"
        )
    return f"{override.target} ({override.source}){until}"
