"""Why the frontend's driver has its own httpx transport: client CPU per request, side by side.

    .venv/bin/python -m bench.transport        (or ./run bench transport)

The same httpx.AsyncClient sends BENCH_TRANSPORT_REQUESTS (default 3,000) POSTs, at most
BENCH_TRANSPORT_CONCURRENCY (default 32) at a time, to one real worker: once with httpx's
default transport (httpcore), once with `frontend/transport.KeepAliveTransport`. What matters
is the client's CPU per request (process time of this process): the driver has to pace up to
1,000 req/s on one core next to its socket.io pages. Hand-written protocol code stays only while
this row shows the library missing that target.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx

from bench.table import Row
from harness.redis_server import RedisServer
from harness.services import start_worker
from istio_burst.frontend.load.transport import KeepAliveTransport

BODY = b'{"str": "bench"}'
# At 1,000 req/s the driver has 1 ms of one core per request for everything it does.
TARGET_MS = 1.0


async def cpu_ms_per_request(
    url: str, transport: httpx.AsyncBaseTransport | None, count: int, concurrency: int
) -> tuple[float, float]:
    """(client CPU ms per request, requests/s) for `count` POSTs."""
    async with httpx.AsyncClient(timeout=5, transport=transport) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                answer = await client.post(url, content=BODY)
                answer.raise_for_status()

        await asyncio.gather(*(one() for _ in range(concurrency)))  # connections open
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu * 1000 / count, count / wall


def main() -> list[Row]:
    count = int(os.environ.get("BENCH_TRANSPORT_REQUESTS", "3000"))
    concurrency = int(os.environ.get("BENCH_TRANSPORT_CONCURRENCY", "32"))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp)).start()
        worker, url = start_worker(redis, Path(tmp))
        try:
            for name, transport in (
                ("httpx default (httpcore)", None),
                ("KeepAliveTransport", KeepAliveTransport()),
            ):
                ms, rate = asyncio.run(cpu_ms_per_request(url + "/", transport, count, concurrency))
                rows.append(
                    Row(
                        f"driver transport c={concurrency}",
                        f"{name}: client CPU / request",
                        f"{ms:.2f} ms ({rate:,.0f} req/s)",
                        f"< {TARGET_MS:g} ms (1,000 req/s on one core)",
                    )
                )
        finally:
            worker.stop()
            redis.stop()
    return rows


if __name__ == "__main__":
    from bench.table import print_table

    print_table(main())
