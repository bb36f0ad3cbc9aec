"""This replica's part in a scaled-out frontend: it drives F / live replicas, and reports the
deployment-wide figures its pages are shown."""

from __future__ import annotations

from istio_burst.core.contracts import (
    DriverFigures,
    PageStats,
    RedisStatus,
    ReplicaFigures,
    ReplicaReport,
)
from istio_burst.frontend.load.driver import LoadDriver
from istio_burst.frontend.replicas.membership import Membership
from istio_burst.frontend.replicas.shared_frequency import SharedFrequency


class ReplicaShare:
    def __init__(self, shared: SharedFrequency, membership: Membership, driver: LoadDriver) -> None:
        self.shared = shared
        self.membership = membership
        self._driver = driver
        shared.on_change(self._drive)
        membership.on_change(self._drive)

    def _drive(self) -> None:
        # Nothing until we know how many we are: a joining replica must not send all of F.
        known = self.membership.known and self.shared.loaded
        self._driver.set_frequency(self.shared.value / self.membership.count if known else 0.0)

    def not_ready_reason(self) -> str | None:
        if not self.shared.loaded:
            return "the shared frequency is not loaded from redis yet"
        if not self.membership.known:
            return "no heartbeat answered by redis yet"
        return None

    def stats(self, mine: DriverFigures, pages: int, redis: RedisStatus) -> PageStats:
        """The driver's own snapshot, with the deployment's F, achieved rate and pages (every
        other replica's last reported figures, and ours now) and this replica's own figures."""
        own = ReplicaFigures(
            achieved=mine.achieved, share=mine.frequency, in_flight=mine.in_flight, pages=pages
        )
        self.membership.figures = own
        others = [
            figures for rid, figures in self.membership.members.items() if rid != self.membership.id
        ]
        return PageStats(
            **mine.model_dump(exclude={"frequency", "achieved"}),
            frequency=self.shared.value,
            achieved=round(own.achieved + sum(f.achieved for f in others), 2),
            pages=own.pages + sum(f.pages for f in others),
            replicas=self.membership.count,
            replica=ReplicaReport(id=self.membership.id, **own.model_dump()),
            shared=self.shared.shared,
            redis=redis,
        )
