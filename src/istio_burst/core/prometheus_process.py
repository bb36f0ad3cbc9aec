"""Running a real Prometheus for the local demo, the tests and the benchmarks (with
`core.processes`).

There is one Prometheus config, `prometheus.yml` beside this module, shipped in the package
(docker-compose mounts the same file): a 1 s scrape of whatever `targets/*.json` beside it lists.
Each user of it copies the file into its own directory and writes the targets it wants there.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import orjson

from istio_burst.core.processes import answers_200

CONFIG = files("istio_burst.core") / "prometheus.yml"


def prepare_config(
    config_dir: Path, targets: dict[str, list[str]], paths: dict[str, str] | None = None
) -> Path:
    """Copy the packaged config into `config_dir` with `targets` to scrape; returns its path.

    `targets` maps a service name (the `service` label of its series) to `host:port` addresses;
    `paths` gives a service's metrics path where it is not /metrics.
    """
    (config_dir / "targets").mkdir(parents=True, exist_ok=True)
    config_path = config_dir / "prometheus.yml"
    config_path.write_bytes(CONFIG.read_bytes())
    paths = paths or {}
    groups = [
        {
            "targets": hosts,
            "labels": {
                "service": name,
                **({"__metrics_path__": paths[name]} if name in paths else {}),
            },
        }
        for name, hosts in targets.items()
    ]
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
    return answers_200(base_url.rstrip("/") + "/-/ready", timeout)
