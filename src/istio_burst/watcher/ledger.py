"""The decision ledger: every record the watcher makes, kept once and handed to its sinks.

A record repeated (same reason, action, weights and outcome: a write failing round after round)
is counted into the last one (`count`, `last_at`), never added again: the sinks see a repeat and
may fold it (a Kubernetes Event's series) or ignore it (notifications). Sinks must not block:
each takes the record and returns at once (the slow ones queue it).
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import Protocol

from istio_burst.core.contracts import DecisionRecord


class Sink(Protocol):
    def offer(self, record: DecisionRecord, repeat: bool) -> None: ...

    async def close(self) -> None: ...


class Ledger:
    def __init__(self, keep: int, sinks: list[Sink] | None = None) -> None:
        self._records: deque[DecisionRecord] = deque(maxlen=keep)
        self.sinks: list[Sink] = list(sinks or [])

    def add(self, record: DecisionRecord) -> DecisionRecord:
        """Record it (or count it into the last, if a repeat); returns what is kept."""
        last = self._records[-1] if self._records else None
        repeat = last is not None and record.same_as(last)
        if repeat:
            assert last is not None
            last.count += 1
            last.last_at = record.at
            last.detail = record.detail
            kept = last
        else:
            self._records.append(record)
            kept = record
        for sink in self.sinks:
            sink.offer(kept.model_copy(), repeat)
        return kept

    def last(self, n: int) -> list[DecisionRecord]:
        """The newest `n` records, oldest first."""
        # From the newest end: only the `n` asked for are walked, not the whole deque.
        newest = list(islice(reversed(self._records), max(0, n)))
        return newest[::-1]
