"""From the Redis channel to every page: hashes batched per window, bounded per page.

Everything that arrives within `window` seconds goes out as one `hashes` event, encoded once for
all pages that are keeping up. Each event carries `seq`, the number of the newest batch, and a
page tells which it has handled with a `received` event `{"seq": n}` (the page's script does so
about every 0.2 s). A page more than BEHIND_AFTER_BATCHES behind is skipped, its hashes merged
into a backlog that keeps only the newest `per_batch` hashes and the true counts, sent as one
event once it has caught up. So a slow page, or one that never reads, costs a bounded amount of
memory and gets the newest hashes, never a growing queue.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import socketio

from istio_burst.core.background import BackgroundTasks
from istio_burst.core.contracts import HashMessage
from istio_burst.frontend import metrics

HASHES_EVENT = "hashes"
RECEIVED_EVENT = "received"
# Batches (about 5 s of 30 ms windows) a page's acknowledgement may lag the newest before we
# stop sending it batches and keep a backlog for it instead. Pages acknowledge every 0.2 s; a
# busy browser or machine lags a second or two, and holding it back then only delays it more
# (measured: p99 doubled at 40). Batches sent to many pages are encoded once and shared, so
# what a page that never reads holds is this many references, not this many copies.
BEHIND_AFTER_BATCHES = 160


@dataclass
class Batch:
    """Newest hashes (oldest first) plus the exact number of hashes they stand for, per cluster."""

    per_batch: int
    hashes: deque[dict[str, Any]] = field(init=False)
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.hashes = deque(maxlen=self.per_batch)

    def add(self, message: HashMessage) -> None:
        self.hashes.append(
            {
                "value": message.value,
                "cluster": message.cluster,
                "worker": message.worker,
                "published_at": message.published_at,
            }
        )
        self.counts[message.cluster] += 1

    def merge(self, other: Batch) -> None:
        self.hashes.extend(other.hashes)
        self.counts.update(other.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def payload(self, seq: int) -> dict[str, Any]:
        return {
            "seq": seq,
            "hashes": list(self.hashes),
            "count": self.total,
            "counts": dict(self.counts),
            "sent_at": time.time(),
        }


class HashRelay:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        *,
        window: float,
        per_batch: int,
    ) -> None:
        self._sio = sio
        self._window = window
        self._per_batch = per_batch
        self._pending = Batch(per_batch)
        self._published: list[float] = []  # every pending hash's publish time, for the histogram
        self._seq = 0  # batches sent to the pages keeping up
        self._acked: dict[str, int] = {}  # per page: the newest batch it says it has handled
        self._backlogs: dict[str, Batch] = {}
        self._work = asyncio.Event()
        self._tasks = BackgroundTasks()

    def add_page(self, sid: str) -> None:
        self._acked[sid] = self._seq

    def remove_page(self, sid: str) -> None:
        self._acked.pop(sid, None)
        self._backlogs.pop(sid, None)

    async def received(self, sid: str, data: Any = None) -> None:
        """A page's `received` event: `{"seq": n}`, the newest batch it has handled."""
        seq = data.get("seq") if isinstance(data, dict) else None
        if type(seq) is int and sid in self._acked and self._acked[sid] < seq <= self._seq:
            self._acked[sid] = seq

    def lag(self, sid: str) -> int:
        """Batches sent since the newest one the page says it has handled."""
        return self._seq - self._acked[sid]

    def published(self, data: bytes) -> None:
        """A message on the hash channel (ContractError if it is not a hash)."""
        self.add(HashMessage.decode(data))

    def add(self, message: HashMessage) -> None:
        self._pending.add(message)
        self._published.append(message.published_at)
        metrics.HASHES_RELAYED.labels(cluster=message.cluster).inc()
        self._work.set()

    def start(self) -> None:
        self._tasks.start(self._run(), "hash-relay")

    async def stop(self) -> None:
        await self._tasks.stop()

    async def _run(self) -> None:
        while True:
            await self._work.wait()
            # The first hash of a window opens it; all that come within `window` share one event.
            await asyncio.sleep(self._window)
            self._work.clear()
            await self.flush()
            if self._backlogs:
                self._work.set()  # come back for pages that were behind

    async def flush(self) -> None:
        batch, self._pending = self._pending, Batch(self._per_batch)
        published, self._published = self._published, []
        if batch.total:
            self._seq += 1
        now = time.time()
        for at in published:
            metrics.END_TO_END_SECONDS.observe(max(0.0, now - at))
        keeping_up: list[str] = []
        for sid in list(self._acked):
            backlog = self._backlogs.get(sid)
            if self.lag(sid) > BEHIND_AFTER_BATCHES:
                if batch.total:
                    if backlog is None:
                        backlog = self._backlogs[sid] = Batch(self._per_batch)
                    backlog.merge(batch)
                continue
            if backlog is not None:
                del self._backlogs[sid]
                backlog.merge(batch)
                await self._send(backlog, [sid])
            elif batch.total:
                keeping_up.append(sid)
        if keeping_up:
            await self._send(batch, keeping_up)

    async def _send(self, batch: Batch, sids: list[str]) -> None:
        metrics.HASHES_ELIDED.inc((batch.total - len(batch.hashes)) * len(sids))
        payload = batch.payload(self._seq)
        await self._sio.emit(HASHES_EVENT, payload, to=sids if len(sids) > 1 else sids[0])
