"""Running a real Prometheus for the local demo, the tests and the benchmarks.

Debian's `prometheus` (2.42) is started with a generated config: one job per named group of
targets, a short scrape interval (the demo's watcher reads `rate(...[5s])` at a 1 s scrape), and
its own storage directory. The config is written as JSON, which is valid YAML, so no YAML
library is needed at run time.
"""

from __future__ import annotations

import shutil

import httpx
import orjson

DEFAULT_BINARY = "prometheus"


def duration(seconds: float) -> str:
    """A Prometheus duration: whole milliseconds (`1000ms`), the finest unit it accepts."""
    millis = round(seconds * 1000)
    if millis <= 0:
        raise ValueError(f"a scrape interval must be positive, not {seconds!r}")
    return f"{millis}ms"


def render_config(targets: dict[str, list[str]], scrape_interval: float = 1.0) -> str:
    """prometheus.yml text scraping each job's `host:port` targets at `/metrics`.

    The scrape timeout equals the interval (Prometheus's default of 10 s would exceed a 1 s
    interval and be rejected).
    """
    interval = duration(scrape_interval)
    config = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(hosts)}]}
            for job, hosts in targets.items()
        ],
    }
    return orjson.dumps(config, option=orjson.OPT_INDENT_2).decode() + "\n"


def prometheus_command(
    binary: str,
    config_path: str,
    storage_dir: str,
    listen_port: int,
    listen_host: str = "127.0.0.1",
) -> list[str]:
    """argv for a Prometheus that keeps an hour of data and logs only warnings."""
    return [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={storage_dir}",
        f"--web.listen-address={listen_host}:{listen_port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]


def find_binary(name: str = DEFAULT_BINARY) -> str | None:
    return shutil.which(name)


def is_ready(base_url: str, timeout: float = 1.0) -> bool:
    """True once Prometheus answers `/-/ready` with 200 (it has loaded its config and TSDB)."""
    try:
        return httpx.get(base_url.rstrip("/") + "/-/ready", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
