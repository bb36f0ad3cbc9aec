"""This replica's part in a scaled-out frontend: the shared frequency, the live replicas, its
share of the load, and the deployment-wide figures the pages are shown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from istio_burst.frontend.load.driver import LoadDriver
from istio_burst.frontend.replicas.membership import Membership
from istio_burst.frontend.replicas.shared_frequency import SharedFrequency
from istio_burst.frontend.settings import FrontendSettings


class ScaleOut:
    def __init__(
        self,
        settings: FrontendSettings,
        client: aioredis.Redis,
        driver: LoadDriver,
        announce: Callable[[], Awaitable[None]],
    ) -> None:
        self._driver = driver
        self._local: dict[str, Any] = {}
        self.shared = SharedFrequency(
            settings.redis_url,
            client,
            settings.channel,
            initial=settings.frequency,
            on_change=self._drive_share,
            announce=announce,
        )
        self.membership = Membership(
            client, settings.channel, figures=lambda: self._local, on_members=self._drive_share
        )

    def _drive_share(self, _: object = None) -> None:
        # Nothing until we know how many we are: a joining replica must not send all of F.
        known = self.membership.known and self.shared.loaded
        self._driver.set_frequency(self.shared.value / self.membership.count if known else 0.0)

    def start(self) -> None:
        self.shared.start()
        self.membership.start()

    async def stop(self) -> None:
        await self.membership.stop()  # the others take over our share at once
        await self.shared.stop()

    def not_ready_reason(self) -> str | None:
        if not self.shared.loaded:
            return "the shared frequency is not loaded from redis yet"
        if not self.membership.known:
            return "no heartbeat answered by redis yet"
        return None

    def stats(self, mine: dict[str, Any], pages: int) -> dict[str, Any]:
        """The driver's own snapshot, with the deployment's F, achieved rate and pages (every
        replica's last reported figures, summed) and this replica's own figures."""
        self._local = {
            "achieved": mine["achieved"],
            "share": mine["frequency"],
            "in_flight": mine["in_flight"],
            "pages": pages,
        }
        totals = self.membership.totals()
        return {
            **mine,
            "frequency": self.shared.value,
            "achieved": round(totals.get("achieved", mine["achieved"]), 2),
            "pages": int(totals.get("pages", pages)),
            "replicas": self.membership.count,
            "replica": {"id": self.membership.id, **self._local},
            "shared": self.shared.shared,
        }
