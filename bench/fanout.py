"""Fan-out: 50 socket.io clients while 500 hashes/s stream through the frontend.

    .venv/bin/python -m bench.fanout          (or ./run bench fanout)

BENCH_FANOUT_CLIENTS (default 50) python-socketio clients, BENCH_FANOUT_RATE (default 500)
requests/s, BENCH_FANOUT_SECONDS (default 10) measured after 2 s of warm-up. The bench subscribes
to the workers' channel itself: a hash published in the measured window that a client never
holds is lost. The clients run in this one process, on the same 2 cores as the frontend.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis

from bench._frontend import frontend_stack, seconds_from_env
from bench.latency import percentile
from bench.table import Row
from harness.frontend import Page, Stack
from harness.procfs import sample
from istio_burst.core.contracts import HashMessage

ELIDED = "hashr_frontend_hashes_elided_total"


async def record_published(url: str, channel: str, into: set[str], stop: asyncio.Event) -> None:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    try:
        while not stop.is_set():
            message = await pubsub.get_message(timeout=0.1)
            if message is not None and message["type"] == "message":
                into.add(HashMessage.decode(message["data"]).value)
    finally:
        await pubsub.aclose()
        await client.aclose()


async def measure(stack: Stack, clients: int, rate: float, seconds: float) -> list[Row]:
    pages = [Page(stack.url) for _ in range(clients)]
    await asyncio.gather(*(page.connect() for page in pages))
    try:
        await pages[0].set_frequency(rate)
        await asyncio.gather(*(page.wait_for("hashes") for page in pages))
        await asyncio.sleep(2.0)

        published: set[str] = set()
        stop = asyncio.Event()
        recorder = asyncio.create_task(
            record_published(stack.redis.url, stack.channel, published, stop)
        )
        await asyncio.sleep(0.2)  # subscribed before the window opens
        elided_before = stack.metric(ELIDED)
        before, started = sample(stack.frontend.pid), time.monotonic()
        marks = [page.mark() for page in pages]
        await asyncio.sleep(seconds)
        after, elapsed = sample(stack.frontend.pid), time.monotonic() - started
        stop.set()
        await recorder
        await asyncio.sleep(1.0)  # what was published last is still on its way
        await pages[0].set_frequency(0)
        elided = stack.metric(ELIDED) - elided_before
    finally:
        for page in pages:
            with contextlib.suppress(Exception):
                await page.close()

    lost = [len(published - {h["value"] for h in page.hashes()}) for page in pages]
    delays = [
        (event.wall - item["published_at"]) * 1000
        for page, mark in zip(pages, marks, strict=True)
        for event in page.events[mark:]
        if event.name == "hashes"
        for item in event.data["hashes"]
    ]
    name = f"fanout {clients} clients @{rate:g}/s"
    cpu = (after.cpu_seconds - before.cpu_seconds) / elapsed * 100
    return [
        Row(name, "hashes published", f"{len(published)} in {elapsed:.1f} s"),
        Row(
            name,
            "hashes lost",
            f"{sum(lost)} in all, at most {max(lost)} for one client",
            "0",
        ),
        Row(
            name,
            "hashes sent only as a count",
            f"{elided:.0f} (burst over HASHES_PER_BATCH, or slow client)",
        ),
        Row(name, "frontend CPU", f"{cpu:.0f} % of one core"),
        Row(
            name,
            "frontend RSS",
            f"{after.rss_mb:.0f} MB (peak {after.peak_rss_mb:.0f} MB)",
            "",
            "~104 MB",
        ),
        Row(name, "end-to-end p99", f"{percentile(delays, 0.99):.0f} ms" if delays else "-"),
    ]


def main() -> list[Row]:
    clients = int(seconds_from_env("BENCH_FANOUT_CLIENTS", 50))
    rate = seconds_from_env("BENCH_FANOUT_RATE", 500)
    seconds = seconds_from_env("BENCH_FANOUT_SECONDS", 10)

    async def run() -> list[Row]:
        with frontend_stack(MAX_FREQUENCY=str(rate)) as stack:
            return await measure(stack, clients, rate, seconds)

    return asyncio.run(run())


if __name__ == "__main__":
    from bench.table import print_table

    print_table(main(), "frontend fan-out")
