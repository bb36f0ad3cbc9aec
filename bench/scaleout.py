"""Scale-out: 1, 2 and 3 frontend replicas sharing one frequency F = 1,000 per replica.

    .venv/bin/python -m bench.scaleout          (or ./run bench scaleout)

Each replica drives its share (F / replicas) at its own worker (one worker process per replica,
so the workers are not the limit); all on one Redis and one hash channel. After 2 s of warm-up,
BENCH_SCALEOUT_SECONDS (default 8) are measured: the total the workers answered (the sum that
must track F), each replica's CPU (user + system, % of one core) and the end-to-end latency
(worker publish -> a page on the first replica) of the hashes shown. BENCH_SCALEOUT_REPLICAS
(default 1,2,3) and BENCH_SCALEOUT_PER_REPLICA (default 1000 req/s) change the plan.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench._frontend import seconds_from_env
from bench.latency import percentile
from bench.table import Row
from harness.frontend import Page, new_channel
from harness.metrics import metric_value
from harness.processes import ManagedProcess
from harness.procfs import sample
from harness.redis_server import RedisServer
from harness.services import start_service, start_worker

WORKER_REQUESTS = "hashr_worker_requests_total"


def worker_total(urls: list[str]) -> float:
    return sum(metric_value(url, WORKER_REQUESTS) for url in urls)


async def measure(replicas: int, per_replica: float, seconds: float) -> list[Row]:
    frequency = replicas * per_replica
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        log_dir = Path(tmp)
        redis = RedisServer(log_dir).start()
        processes: list[ManagedProcess] = []
        try:
            channel = new_channel()
            workers, frontends = [], []
            for _ in range(replicas):
                worker, worker_url = start_worker(
                    redis, log_dir, CHANNEL=channel, LOG_LEVEL="WARNING"
                )
                processes.append(worker)
                frontend, url = start_service(
                    "frontend",
                    log_dir,
                    ready_path="/_healthz",
                    REDIS_URL=redis.host_port,
                    PROCESSOR_URL=worker_url,
                    CHANNEL=channel,
                    MAX_FREQUENCY=str(frequency),
                    LOG_LEVEL="WARNING",
                )
                processes.append(frontend)
                workers.append(worker_url)
                frontends.append((frontend, url))
            async with Page(frontends[0][1]) as page:
                await page.wait_for("stats", lambda s: s["replicas"] == replicas, timeout=15)
                await page.set_frequency(frequency)
                await asyncio.sleep(2.0)
                cpu_before = [sample(proc.pid).cpu_seconds for proc, _ in frontends]
                total_before, started = worker_total(workers), time.monotonic()
                since = page.mark()
                await asyncio.sleep(seconds)
                until = page.mark()
                total_after, ended = worker_total(workers), time.monotonic()
                cpu_after = [sample(proc.pid).cpu_seconds for proc, _ in frontends]
                await page.set_frequency(0)
        finally:
            for proc in reversed(processes):
                proc.stop()
            redis.stop()
    elapsed = ended - started
    achieved = (total_after - total_before) / elapsed
    cpu = ", ".join(
        f"{(after - before) / elapsed * 100:.0f} %"
        for before, after in zip(cpu_before, cpu_after, strict=True)
    )
    delays = [
        (event.wall - item["published_at"]) * 1000
        for event in page.events[since:until]
        if event.name == "hashes"
        for item in event.data["hashes"]
    ]
    p99 = f"{percentile(delays, 0.99):.0f} ms ({len(delays)} shown)" if delays else "none shown"
    name = f"scale-out {replicas} frontend(s), F = {frequency:g}"
    return [
        Row(
            name,
            "achieved total",
            f"{achieved:.0f} req/s ({achieved / frequency:.3f} of F)",
            "F ± 2 %",
        ),
        Row(name, "CPU per replica", cpu),
        Row(name, "end-to-end p99", p99, "≤ 100 ms"),
    ]


def main() -> list[Row]:
    seconds = seconds_from_env("BENCH_SCALEOUT_SECONDS", 8)
    per_replica = seconds_from_env("BENCH_SCALEOUT_PER_REPLICA", 1000)
    plan = [int(n) for n in os.environ.get("BENCH_SCALEOUT_REPLICAS", "1,2,3").split(",")]

    async def run() -> list[Row]:
        rows: list[Row] = []
        for replicas in plan:
            rows.extend(await measure(replicas, per_replica, seconds))
        return rows

    return asyncio.run(run())


if __name__ == "__main__":
    from bench.table import print_table

    print_table(main(), "frontend scale-out")
