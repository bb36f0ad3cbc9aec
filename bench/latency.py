"""End-to-end latency: from the worker publishing a hash to a socket.io client holding it.

    .venv/bin/python -m bench.latency          (or ./run bench latency)

At BENCH_LATENCY_RATE requests/s (default 100) for BENCH_LATENCY_SECONDS (default 10) after 1 s
of warm-up. Each hash carries the worker's publish time (HashMessage.published_at); the client
notes when its batch arrived. Same machine, same clock. The frontend batches hashes for
BATCH_WINDOW (default 0.03 s), which is part of what is measured. The requests go through
HAProxy as in the demo (BENCH_THROUGH_PROXY=0: directly to the worker).
"""

from __future__ import annotations

import asyncio
import statistics

from bench._frontend import frontend_stack, hop_label, seconds_from_env
from bench.table import Row
from harness.frontend import Page


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(rate: float, seconds: float) -> list[float]:
    with frontend_stack(MAX_FREQUENCY=str(rate)) as stack:
        async with Page(stack.url) as page:
            await page.set_frequency(rate)
            await page.wait_for("hashes")
            await asyncio.sleep(1.0)
            since = page.mark()
            await asyncio.sleep(seconds)
            until = page.mark()
            await page.set_frequency(0)
        return [
            event.wall - item["published_at"]
            for event in page.events[since:until]
            if event.name == "hashes"
            for item in event.data["hashes"]
        ]


def main() -> list[Row]:
    rate = seconds_from_env("BENCH_LATENCY_RATE", 100)
    seconds = seconds_from_env("BENCH_LATENCY_SECONDS", 10)
    delays = asyncio.run(measure(rate, seconds))
    if not delays:
        return [
            Row(
                f"latency @{rate:g} req/s{hop_label()}",
                "end-to-end",
                "no hashes arrived",
                "p99 ≤ 100 ms",
            )
        ]
    name = f"latency @{rate:g} req/s{hop_label()}"
    ms = [d * 1000 for d in delays]
    return [
        Row(name, "end-to-end p50", f"{statistics.median(ms):.1f} ms ({len(ms)} hashes)"),
        Row(name, "end-to-end p99", f"{percentile(ms, 0.99):.1f} ms", "≤ 100 ms"),
        Row(name, "end-to-end max", f"{max(ms):.1f} ms"),
    ]


if __name__ == "__main__":
    from bench.table import print_table

    print_table(main(), "frontend end-to-end latency")
