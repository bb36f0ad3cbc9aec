"""Is the burst side fit to take traffic? A readiness URL and/or a PromQL error ratio."""

from __future__ import annotations

import httpx

from istio_burst.core.redis import describe_error
from istio_burst.core.settings import redact_url
from istio_burst.watcher.decide import NO_HEALTH_SIGNAL, BurstHealth
from istio_burst.watcher.fetch import bounded_get
from istio_burst.watcher.prometheus import PrometheusSource
from istio_burst.watcher.readings import ReadingKind


class BurstHealthCheck:
    """Unhealthy when either configured signal says so; no signal set means no evidence.

    The error ratio is only evidence when requests were sent to burst: an empty or NaN ratio
    (0/0: nothing sent) says nothing, and neither does a failed query (that is Prometheus's
    trouble, already counted by the readings).
    """

    def __init__(
        self,
        url: str,
        error_query: str,
        max_error_ratio: float,
        source: PrometheusSource,
        timeout: float,
    ) -> None:
        self.url = url
        self.shown_url = redact_url(url)  # for details, which reach logs and pages
        self.error_query = error_query
        self.max_error_ratio = max_error_ratio
        self.timeout = timeout
        self._source = source
        self._http = httpx.AsyncClient(timeout=timeout)

    async def check(self) -> BurstHealth:
        verdicts = []
        if self.url:
            verdicts.append(await self._ready())
        if self.error_query:
            verdicts.append(await self._error_ratio())
        sick = [v.detail for v in verdicts if v.healthy is False]
        if sick:
            return BurstHealth(False, "; ".join(sick))
        if any(v.healthy for v in verdicts):
            return BurstHealth(True, "; ".join(v.detail for v in verdicts if v.detail))
        return BurstHealth(None, "; ".join(v.detail for v in verdicts if v.detail))

    async def _ready(self) -> BurstHealth:
        # Only the status counts: the body is never read. A redirect is not a 200.
        try:
            response = await bounded_get(
                self._http, self.url, deadline=self.timeout, read_body=False
            )
        except (TimeoutError, httpx.TimeoutException):
            return BurstHealth(False, f"{self.shown_url}: no answer within {self.timeout:g} s")
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            return BurstHealth(False, f"{self.shown_url}: {redact_url(describe_error(exc))}")
        if response.status != 200:
            return BurstHealth(False, f"{self.shown_url}: HTTP {response.status}")
        return BurstHealth(True)

    async def _error_ratio(self) -> BurstHealth:
        reading = await self._source.read(self.error_query)
        if reading.kind is ReadingKind.NUMBER and reading.value is not None:
            ratio = reading.value
            if ratio > self.max_error_ratio:
                return BurstHealth(False, f"error ratio {ratio:.2f} over {self.max_error_ratio:g}")
            return BurstHealth(True, f"error ratio {ratio:.2f}")
        if reading.kind in (ReadingKind.EMPTY, ReadingKind.NAN_INF):
            return NO_HEALTH_SIGNAL  # no requests to burst: nothing to judge
        return BurstHealth(None, f"error ratio unknown: {reading}")

    async def close(self) -> None:
        await self._http.aclose()
