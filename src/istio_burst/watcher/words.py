"""Decision records in words, for people: notifications, `watcher status`, Event notes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from istio_burst.core.contracts import DecisionRecord, RecordOutcome, Weights

_WORD = re.compile(r"(?<!^)(?=[A-Z])")


def reason_words(reason: str) -> str:
    """`BurstStarted` -> `burst started`."""
    return _WORD.sub(" ", reason).lower()


def weights_words(weights: dict[str, int]) -> str:
    """`{"primary": 100, "burst": 0}` -> `100/0`."""
    return str(Weights.decode(weights))


def clock_words(unix: float) -> str:
    """The time of day, UTC: `12:59:28`."""
    return datetime.fromtimestamp(unix, UTC).strftime("%H:%M:%S")


def record_words(record: DecisionRecord, *, with_time: bool = True) -> str:
    """`12:59:28 burst started: 30 req/s above HIGH 15 (100/0 -> 0/100, written)`."""
    when = f"{clock_words(record.at)} " if with_time else ""
    change = ""
    if record.after != record.before:
        change = f"{weights_words(record.before)} -> {weights_words(record.after)}, "
    outcome = "" if record.outcome is RecordOutcome.NONE else str(record.outcome)
    if record.error_kind is not None:
        outcome += f": {record.error_kind}"
    tail = f" ({change}{outcome})" if change or outcome else ""
    repeats = f" x{record.count}" if record.count > 1 else ""
    return f"{when}{reason_words(record.reason)}: {record.detail}{tail}{repeats}"
