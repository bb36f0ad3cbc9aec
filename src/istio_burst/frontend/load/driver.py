"""The load driver: POSTs `{"str": <random>}` to the workers at the set frequency.

Sends are scheduled on an absolute clock (tick k at anchor + k/frequency), so time spent sending
never slows the rate down; when the loop wakes late it sends every tick that is due. The schedule
stays anchored across changes, stops included: the next tick is one new period after the last,
never earlier, so no sequence of changes (0 <-> F, as fast as pages can send them) makes more
than F sends in any second; a SendCap holds that on the actual send times too (a tick it refuses
is skipped, reason "cap"). It never builds a backlog: a tick due while `max_in_flight` requests
are unanswered, or one more than LATE_LIMIT seconds late (the process was stalled), is counted
as skipped and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass, field

import httpx

from istio_burst.core.background import BackgroundTasks
from istio_burst.core.contracts import (
    OUTCOME_FAILED,
    OUTCOME_OK,
    OUTCOME_SKIPPED,
    DriverFigures,
    TargetFigures,
)
from istio_burst.frontend import metrics
from istio_burst.frontend.load.send_cap import SendCap
from istio_burst.frontend.load.transport import KeepAliveTransport
from istio_burst.frontend.settings import DEFAULT_TARGET

log = logging.getLogger(__name__)

# A stall shorter than this (GC, a busy machine) is caught up; ticks older than it are dropped.
LATE_LIMIT = 1.0
_JSON = {"content-type": "application/json"}


@dataclass
class TargetStats:
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    last_error: str | None = None
    last_error_at: float | None = None

    def count(self, outcome: str, n: int = 1) -> None:
        setattr(self, outcome, getattr(self, outcome) + n)


@dataclass
class _Interval:
    """Counts at the previous snapshot, to turn totals into per-second rates."""

    at: float = field(default_factory=time.monotonic)
    totals: dict[str, tuple[int, int, int]] = field(default_factory=dict)


class LoadDriver:
    def __init__(self, url: str, *, timeout: float, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._frequency = 0.0
        self._in_flight = 0
        self._loop = BackgroundTasks()
        self._requests = BackgroundTasks()
        self._waiter: asyncio.Future[bool] | None = None
        # One target: the data plane in front of the workers decides which side serves.
        self.stats = {DEFAULT_TARGET: TargetStats()}
        # Parsed once: parsing the URL string again is a good part of httpx's cost per request.
        self._url = httpx.URL(url)
        self._interval = _Interval()
        self._cap = SendCap()

    @property
    def frequency(self) -> float:
        return self._frequency

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def set_frequency(self, frequency: float) -> None:
        """Takes effect at once: the loop re-plans its next send from the last one."""
        self._frequency = frequency
        self._cap.set_frequency(frequency, time.monotonic())
        metrics.FREQUENCY.set(frequency)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(True)

    def start(self) -> None:
        # One client for every request, over keep-alive connections (see transport.py).
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout), transport=KeepAliveTransport()
        )
        self._loop.start(self._run(), "load-driver")

    async def stop(self, grace: float) -> None:
        """Stop sending; give requests in flight up to `grace` seconds, then close the client."""
        await self._loop.stop()
        await self._requests.stop(grace)
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        anchor = 0.0  # when tick 0 of the current frequency is (or was) due
        ticks = 0  # ticks handled since anchor
        period = 0.0  # of the current frequency; 0.0: not planned yet
        last_tick = -math.inf
        while True:
            frequency = self._frequency
            if frequency <= 0:
                await self._sleep_until(None)
                # Started again: planned from the last tick like any other change, so a restart
                # never sends sooner than one period after the last request.
                period = 0.0
                continue
            if 1.0 / frequency != period:
                # New frequency: the next send comes one new period after the last one, or now.
                period = 1.0 / frequency
                anchor, ticks = max(loop.time(), last_tick + period), 0
            due_at = anchor + ticks * period
            now = loop.time()
            if due_at > now:
                if await self._sleep_until(due_at):
                    continue  # the frequency changed while we waited
                now = loop.time()
            due = math.floor((now - due_at) / period) + 1
            late = min(due, max(0, math.ceil((now - LATE_LIMIT - due_at) / period)))
            if late:
                metrics.SKIPPED.labels(reason="late").inc(late)
            if late:
                self._count(OUTCOME_SKIPPED, late)
            for _ in range(due - late):
                self._fire()
            ticks += due
            last_tick = anchor + (ticks - 1) * period

    async def _sleep_until(self, when: float | None) -> bool:
        """Sleep until `when` (None: until woken); True if woken by a frequency change."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_at(when, _resolve, waiter) if when is not None else None
        try:
            return await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _fire(self) -> None:
        if not self._cap.admit(time.monotonic()):
            metrics.SKIPPED.labels(reason="cap").inc()
            self._count(OUTCOME_SKIPPED)
            return
        if self._in_flight >= self.max_in_flight:
            metrics.SKIPPED.labels(reason="in_flight").inc()
            self._count(OUTCOME_SKIPPED)
            return
        self._in_flight += 1
        metrics.IN_FLIGHT.set(self._in_flight)
        self._requests.start(self._send(), "request")

    async def _send(self) -> None:
        assert self._client is not None
        body = b'{"str":"%016x"}' % random.getrandbits(64)
        started = time.perf_counter()
        error: str | None = None
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.post(self._url, content=body, headers=_JSON)
            if response.status_code != 200:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
        except TimeoutError:
            error = f"no answer within {self._timeout:g}s"
        except Exception as exc:  # any failure of one request is a failed send, never our end
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        finally:
            self._in_flight -= 1
            metrics.IN_FLIGHT.set(self._in_flight)
            metrics.REQUEST_SECONDS.labels(target=DEFAULT_TARGET).observe(
                time.perf_counter() - started
            )
        if error is None:
            self._count(OUTCOME_OK)
        else:
            self._count(OUTCOME_FAILED)
            stats = self.stats[DEFAULT_TARGET]
            if stats.last_error is None:
                log.warning("requests to the worker fail", extra={"error": error})
            stats.last_error, stats.last_error_at = error, time.time()

    def _count(self, outcome: str, n: int = 1) -> None:
        self.stats[DEFAULT_TARGET].count(outcome, n)
        metrics.REQUESTS.labels(target=DEFAULT_TARGET, outcome=outcome).inc(n)

    def snapshot(self) -> DriverFigures:
        """Totals and per-second rates since the previous snapshot (the pages' `stats` event)."""
        now = time.monotonic()
        elapsed = max(now - self._interval.at, 1e-6)
        targets: dict[str, TargetFigures] = {}
        sent_rate = 0.0
        for name, stats in self.stats.items():
            before = self._interval.totals.get(name, (0, 0, 0))
            rates = [
                (value - old) / elapsed
                for value, old in zip((stats.ok, stats.failed, stats.skipped), before, strict=True)
            ]
            sent_rate += rates[0] + rates[1]
            recent_error = stats.last_error_at is not None and rates[1] > 0
            targets[name] = TargetFigures(
                ok=stats.ok,
                failed=stats.failed,
                skipped=stats.skipped,
                ok_rate=round(rates[0], 2),
                failed_rate=round(rates[1], 2),
                skipped_rate=round(rates[2], 2),
                error=stats.last_error if recent_error else None,
            )
            self._interval.totals[name] = (stats.ok, stats.failed, stats.skipped)
        self._interval.at = now
        metrics.ACHIEVED_RATE.set(sent_rate)
        return DriverFigures(
            frequency=self._frequency,
            achieved=round(sent_rate, 2),
            in_flight=self._in_flight,
            max_in_flight=self.max_in_flight,
            targets=targets,
        )


def _resolve(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
