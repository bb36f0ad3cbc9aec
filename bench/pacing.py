"""Pacing of the frontend's load driver: requests sent per second / requests per second asked for.

    .venv/bin/python -m bench.pacing          (or ./run bench pacing)

BENCH_PACING_SECONDS (default 10) is the measured time per rate, after 1 s of warm-up;
BENCH_PACING_RATES (default 5,20,100,500,1000) the rates. Sent = ok + failed (skipped requests,
over the in-flight cap, are not sent). One worker answers, through HAProxy as in the demo
(BENCH_THROUGH_PROXY=0: directly), on the same 2-core machine.
"""

from __future__ import annotations

import asyncio
import os
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench._frontend import frontend_stack, hop_label, seconds_from_env
from bench.table import Row
from harness.frontend import Page, Stack
from istio_burst.core.contracts import (
    FRONTEND_REQUESTS_METRIC,
    OUTCOME_FAILED,
    OUTCOME_OK,
    OUTCOME_SKIPPED,
)

ORIGINAL = {20: "1.00", 100: "0.989", 500: "0.957", 1000: "0.898"}
COUNTER = FRONTEND_REQUESTS_METRIC


def counts(stack: Stack) -> tuple[dict[str, float], float]:
    """The driver's request counts by outcome, and when they were read (monotonic seconds)."""
    text = httpx.get(stack.url + "/metrics", timeout=5).text
    at = time.monotonic()
    totals = dict.fromkeys((OUTCOME_OK, OUTCOME_FAILED, OUTCOME_SKIPPED), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == COUNTER:
                totals[sample.labels["outcome"]] += sample.value
    return totals, at


async def measure(stack: Stack, rate: float, seconds: float) -> Row:
    async with Page(stack.url) as page:
        await page.set_frequency(rate)
        await asyncio.sleep(1.0)
        before, started = counts(stack)
        await asyncio.sleep(seconds)
        after, ended = counts(stack)
        elapsed = ended - started
        await page.set_frequency(0)
    delta = {k: after[k] - before[k] for k in after}
    sent = delta[OUTCOME_OK] + delta[OUTCOME_FAILED]
    ratio = sent / elapsed / rate
    note = f"{ratio:.3f} ({sent:.0f} sent in {elapsed:.1f} s"
    if delta[OUTCOME_FAILED] or delta[OUTCOME_SKIPPED]:
        note += f"; {delta[OUTCOME_FAILED]:.0f} failed, {delta[OUTCOME_SKIPPED]:.0f} skipped"
    return Row(
        f"pacing {rate:g} req/s{hop_label()}",
        "achieved/requested",
        note + ")",
        "1.00 ± 0.02",
        ORIGINAL.get(int(rate), ""),
    )


def main() -> list[Row]:
    seconds = seconds_from_env("BENCH_PACING_SECONDS", 10)
    rates = [float(r) for r in os.environ.get("BENCH_PACING_RATES", "5,20,100,500,1000").split(",")]

    async def run() -> list[Row]:
        with frontend_stack(MAX_FREQUENCY=str(max(rates))) as stack:
            return [await measure(stack, rate, seconds) for rate in rates]

    return asyncio.run(run())


if __name__ == "__main__":
    from bench.table import print_table

    print_table(main(), "frontend pacing")
