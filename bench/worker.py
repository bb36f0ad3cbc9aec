"""One worker process under wrk: req/s, p50, p99, non-2xx, peak RSS, next to the Node.js original.

    .venv/bin/python -m bench.worker [seconds]      (or ./run bench worker)

A real redis-server, one `istio-burst worker` and a real subscriber that counts every message;
wrk (Debian's) with one thread POSTs {"str":"abcdefghij"} as JSON, with 64 and then 8 connections.
BENCH_WORKER_SECONDS (default 15, or the first argument) is each run's length, after a 3 s warm-up;
BENCH_WORKER_CONNECTIONS (default 64,8) the loads. Published messages are checked against the
worker's own count of 200s (wrk does not count requests still in flight when it stops).

More rows say what three choices cost: the same worker on uvicorn's plain httptools protocol,
without the HTTP limits of core/http_limits.py, and on uvicorn's h11 protocol, the supported
ground those limits could stand on instead (h11 bounds the header bytes itself, 16 KiB; the
header count, the deadlines and the websocket cap it does not have) (c=64, run after the
others); and prometheus_client's histograms, timed in this process and set against the
measured request rate.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from bench.table import Row, print_table
from harness.ports import free_port
from harness.processes import ManagedProcess, require_binary
from harness.redis_server import RedisServer
from harness.services import start_worker

# The Node.js original on this machine kind, same load (issue 2).
ORIGINAL = {64: (3688, 79.6), 8: (3570, 8.6)}  # connections -> (req/s, p99 ms)
ORIGINAL_RSS_MB = 132
# The Node.js original side by side with this worker in one run (issue 11), at c=64.
ISSUE_11_NODE = "2,000-2,300 req/s, p99 170-500 ms"
ISSUE_11_NODE_BEST = 2300
ISSUE_11_FACTOR = 2.5
HISTOGRAM_OBSERVATIONS_PER_REQUEST = 2  # hash time and publish time (batch sizes: far fewer)

# `istio-burst worker`, except on one of uvicorn's own protocols: what the HTTP limits cost.
UVICORN_PROTOCOL_WORKER = """\
import sys
from uvicorn.protocols.http.{module} import {name} as Protocol
from istio_burst.core.http_limits import LimitedHttpToolsProtocol
LimitedHttpToolsProtocol.with_limits = classmethod(lambda cls, limits: Protocol)
from istio_burst.cli import main
sys.exit(main(["worker"]))
"""
# (row name, uvicorn module, protocol class, target)
UVICORN_PROTOCOLS = (
    (
        "worker c=64, no HTTP limits",
        "httptools_impl",
        "HttpToolsProtocol",
        "with limits: < 10 % fewer",
    ),
    (
        "worker c=64, uvicorn's h11",
        "h11_impl",
        "H11Protocol",
        "with limits on httptools: more (else limits on h11)",
    ),
)
RSS_TARGET_MB = 100
WARM_UP_SECONDS = 3

POST_SCRIPT = """\
wrk.method = "POST"
wrk.body = '{"str":"abcdefghij"}'
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass
class WrkResult:
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> WrkResult:
    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()  # type: ignore[union-attr]
        return float(value) * _UNIT_MS[unit]

    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests=requests,
        requests_per_second=rate,
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


class CountingSubscriber(threading.Thread):
    """A real subscriber on the worker's channel that counts deliveries, as cheaply as possible.

    It speaks RESP on a plain socket and counts the message headers in what it reads, so on this
    2-core machine it takes little CPU from the worker, wrk and Redis it shares the cores with.
    """

    def __init__(self, port: int, channel: str) -> None:
        super().__init__(daemon=True, name="subscriber")
        name = channel.encode()
        self.header = b"*3\r\n$7\r\nmessage\r\n$%d\r\n%b\r\n" % (len(name), name)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%b\r\n" % (len(name), name))
        confirmation = self.sock.recv(1024)  # from here on, nothing published is missed
        assert confirmation.startswith(b"*3\r\n$9\r\nsubscribe"), confirmation
        self.sock.settimeout(0.2)
        self.received = 0
        self._stopping = threading.Event()

    def run(self) -> None:
        tail = b""  # a header may straddle two reads
        keep = len(self.header) - 1
        while not self._stopping.is_set():
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                return
            data = tail + chunk
            self.received += data.count(self.header)
            tail = data[-keep:]  # too short to hold a whole (already counted) header

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.received < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self._stopping.set()
        self.join(5)
        self.sock.close()


def posts_answered_200(url: str) -> int:
    """From the worker's /metrics: strings hashed minus 503s (each hashed POST is a 200 or 503)."""
    values = {"hashed": 0.0, "unavailable": 0.0}
    text = httpx.get(url + "/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "hashr_worker_hash_seconds_count":
                values["hashed"] = sample.value
            elif sample.name == "hashr_worker_requests_total" and sample.labels["status"] == "503":
                values["unavailable"] = sample.value
    return int(values["hashed"] - values["unavailable"])


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    kb = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]
    return kb / 1024


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> WrkResult:
    argv = [
        require_binary("wrk"),
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url + "/",
    ]
    print("  $ " + " ".join(argv), file=sys.stderr, flush=True)
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    return parse_wrk(done.stdout)


def start_uvicorn_protocol_worker(
    server: RedisServer, workdir: Path, module: str, name: str
) -> tuple[ManagedProcess, str]:
    port = free_port()
    env = {"PORT": str(port), "HOST": "127.0.0.1", "REDIS_URL": server.host_port}
    env |= {"LOG_LEVEL": "WARNING", "CHANNEL": "calculation"}
    argv = [sys.executable, "-c", UVICORN_PROTOCOL_WORKER.format(module=module, name=name)]
    proc = ManagedProcess(f"worker-{name}-{port}", argv, workdir, env=env).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_http_ok(url + "/")
    return proc, url


def histogram_cost_row(requests_per_second: float) -> Row:
    """prometheus_client's Histogram.observe, timed here, as a share of one request's time."""
    histogram = Histogram(
        "bench", "bench", buckets=(0.001, 0.01, 0.1), registry=CollectorRegistry()
    )
    runs = 200_000
    seconds = timeit.timeit(lambda: histogram.observe(0.003), number=runs) / runs
    per_request = seconds * HISTOGRAM_OBSERVATIONS_PER_REQUEST
    share = per_request * requests_per_second * 100  # the worker runs on one core
    return Row(
        "worker metrics",
        "histograms per request",
        f"{per_request * 1e6:.1f} us = {share:.1f} % at {requests_per_second:,.0f} req/s",
        "< 10 % (else a hand-written one)",
    )


def main() -> list[Row]:
    seconds = int(os.environ.get("BENCH_WORKER_SECONDS", "15"))
    loads = [int(c) for c in os.environ.get("BENCH_WORKER_CONNECTIONS", "64,8").split(",")]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        workdir = Path(tmp)
        script = workdir / "post.lua"
        script.write_text(POST_SCRIPT)
        server = RedisServer(workdir).start()
        proc, url = start_worker(server, workdir, LOG_LEVEL="WARNING", CHANNEL="calculation")
        subscriber = CountingSubscriber(server.port, "calculation")  # before the first POST
        subscriber.start()
        try:
            run_wrk(url, script, max(loads), WARM_UP_SECONDS)
            subscriber.wait_for(posts_answered_200(url))
            for connections in loads:
                received_before, ok_before = subscriber.received, posts_answered_200(url)
                result = run_wrk(url, script, connections, seconds)
                ok_after = posts_answered_200(url)
                subscriber.wait_for(received_before + ok_after - ok_before)
                published = subscriber.received - received_before
                rows += result_rows(connections, result, published, ok_after - ok_before)
                if connections == 64:
                    rows += issue_11_rows(result)
                    rows.append(histogram_cost_row(result.requests_per_second))
            rows.append(
                Row(
                    "worker",
                    "peak RSS",
                    f"{peak_rss_mb(proc.pid):.0f} MB",
                    f"< {RSS_TARGET_MB} MB",
                    f"{ORIGINAL_RSS_MB} MB",
                )
            )
        finally:
            subscriber.stop()
            proc.stop()
        try:
            for name, module, protocol, target in UVICORN_PROTOCOLS:
                other, other_url = start_uvicorn_protocol_worker(server, workdir, module, protocol)
                try:
                    run_wrk(other_url, script, 64, WARM_UP_SECONDS)
                    result = run_wrk(other_url, script, 64, seconds)
                finally:
                    other.stop()
                rate = f"{result.requests_per_second:,.0f}"
                rows.append(Row(name, "req/s", rate, target))
                rows.append(Row(name, "p99", f"{result.p99_ms:.1f} ms"))
        finally:
            server.stop()
    return rows


def issue_11_rows(result: WrkResult) -> list[Row]:
    factor = result.requests_per_second / ISSUE_11_NODE_BEST
    return [
        Row(
            "worker c=64 vs issue 11",
            "x the Node original's best req/s",
            f"{factor:.1f}x (p99 {result.p99_ms:.1f} ms)",
            f">= {ISSUE_11_FACTOR}x, p99 < 170 ms",
            ISSUE_11_NODE,
        )
    ]


def result_rows(connections: int, result: WrkResult, published: int, ok: int) -> list[Row]:
    name = f"worker c={connections}"
    original_rate, original_p99 = ORIGINAL.get(connections, (None, None))
    rate_target = f">= {original_rate:,} (aim {1.5 * original_rate:,.0f})" if original_rate else ""
    return [
        Row(
            name,
            "req/s",
            f"{result.requests_per_second:,.0f}",
            rate_target,
            f"{original_rate:,}" if original_rate else "",
        ),
        Row(name, "p50", f"{result.p50_ms:.1f} ms"),
        Row(
            name,
            "p99",
            f"{result.p99_ms:.1f} ms",
            f"< {original_p99} ms" if original_p99 else "",
            f"{original_p99} ms" if original_p99 else "",
        ),
        Row(name, "non-2xx + socket errors", f"{result.non_2xx + result.socket_errors}", "0"),
        Row(
            name,
            "published / answered 200",
            f"{published:,} / {ok:,}" + ("" if published == ok else "  MISMATCH"),
            "equal",
        ),
    ]


if __name__ == "__main__":
    if len(sys.argv) > 1:
        os.environ["BENCH_WORKER_SECONDS"] = sys.argv[1]
    print_table(main(), "istio-burst worker benchmark")
