"""Running a real Prometheus for the local demo, the tests and the benchmarks.

There is one Prometheus config, `prometheus/prometheus.yml` in the repository (docker-compose
mounts the same file): a 1 s scrape of whatever `targets/*.json` beside it lists. Each user of it
copies the file into its own directory and writes the targets it wants scraped there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import orjson

REPO_CONFIG = Path(__file__).resolve().parents[3] / "prometheus" / "prometheus.yml"


def prepare_config(config_dir: Path, targets: dict[str, list[str]]) -> Path:
    """Copy the repository's config into `config_dir` with `targets` to scrape; returns its path.

    `targets` maps a service name (the `service` label of its series) to `host:port` addresses.
    """
    if not REPO_CONFIG.is_file():
        raise FileNotFoundError(
            f"the Prometheus config {REPO_CONFIG} is missing (run from the repo)"
        )
    (config_dir / "targets").mkdir(parents=True, exist_ok=True)
    config_path = config_dir / "prometheus.yml"
    shutil.copy(REPO_CONFIG, config_path)
    groups = [{"targets": hosts, "labels": {"service": name}} for name, hosts in targets.items()]
    (config_dir / "targets" / "targets.json").write_bytes(orjson.dumps(groups))
    return config_path


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


def is_ready(base_url: str, timeout: float = 1.0) -> bool:
    """True once Prometheus answers `/-/ready` with 200 (it has loaded its config and TSDB)."""
    try:
        return httpx.get(base_url.rstrip("/") + "/-/ready", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
