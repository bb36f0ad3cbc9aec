"""docker-compose.yml, checked as far as this machine allows.

Without an engine: validated by the compose tool itself (Debian's docker-compose runs `config`
without one), and every variable, port and healthcheck it uses is checked against the code: the
variables are settings the service reads, and each healthcheck URL answers 200 on the real
service started with the file's environment. tests/containers/ runs the file for real.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from harness.frontend import start_frontend
from harness.haproxy import HAProxyServer
from harness.ports import free_port
from harness.processes import ISTIO_BURST, ManagedProcess
from harness.prometheus import PrometheusServer
from harness.redis_server import RedisServer
from harness.services import start_worker
from istio_burst.core.settings import ServiceSettings
from istio_burst.demo.haproxy import config_template
from istio_burst.frontend.main import Settings as FrontendSettings
from istio_burst.watcher.main import Settings as WatcherSettings
from istio_burst.watcher.settings import LOCAL_BURST_ERROR_QUERY, LOCAL_QUERY
from istio_burst.worker.main import Settings as WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
OUR_SERVICES: dict[str, type[ServiceSettings]] = {
    "worker-primary": WorkerSettings,
    "worker-burst": WorkerSettings,
    "frontend": FrontendSettings,
    "istiowatcher": WatcherSettings,
}
HEALTH_URL = re.compile(r"http://127\.0\.0\.1:(\d+)(/[\w/-]*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as the compose tool resolves it (anchors merged, values checked)."""
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (./run test installs Debian's package)")
    result = subprocess.run(
        [tool, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    return resolved


def env_of(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"][service].get("environment", {}).items()}


def health_url(compose: dict[str, Any], service: str) -> tuple[int, str]:
    test = " ".join(compose["services"][service]["healthcheck"]["test"])
    match = HEALTH_URL.search(test)
    assert match, f"{service}: no http://127.0.0.1:PORT/path in its healthcheck: {test}"
    return int(match.group(1)), match.group(2)


def container_port(published: str | dict[str, Any]) -> int:
    """`config` prints a port long (v2) or short ("127.0.0.1:8080:8080/tcp", 1.29)."""
    if isinstance(published, dict):
        return int(published["target"])
    return int(published.split(":")[-1].split("/")[0])


def test_every_service_restarts_keeps_no_volume_and_publishes_on_variable_loopback_ports(
    compose: dict[str, Any],
) -> None:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        assert service.get("restart") in {"unless-stopped", "always"}, name
        for volume in service.get("volumes", []):  # bind mounts only: `down` leaves nothing
            if isinstance(volume, dict):
                assert volume["type"] == "bind", volume
            else:  # "/host/path:/container/path:ro"; "/path" alone would be anonymous
                assert volume.startswith("/") and ":" in volume, volume
        for published in raw["services"][name].get("ports", []):
            pattern = r"\$\{PUBLISH_ADDRESS:-127\.0\.0\.1\}:\$\{[A-Z]+_PORT:-\d+\}:\d+"
            assert re.fullmatch(pattern, published), published
    assert "ports" not in raw["services"]["redis"], "Redis stays on the compose network"
    assert "volumes" not in raw, "named volumes would outlive `down`"


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "prometheus", "haproxy", *OUR_SERVICES}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["worker-burst"]["environment"]["PREFIX"] == "bursty-"
    assert "PREFIX" not in services["worker-primary"]["environment"]
    for service, dependency in [
        ("frontend", "haproxy"),
        ("frontend", "redis"),
        ("haproxy", "worker-primary"),
        ("haproxy", "worker-burst"),
        ("istiowatcher", "haproxy"),
    ]:
        condition = services[service]["depends_on"][dependency]["condition"]
        assert condition == "service_healthy", (service, dependency)


@pytest.mark.parametrize("service", sorted(OUR_SERVICES))
def test_every_variable_is_a_setting_the_service_reads(
    compose: dict[str, Any], service: str
) -> None:
    settings = OUR_SERVICES[service].model_fields
    unknown = sorted(k for k in env_of(compose, service) if k.lower() not in settings)
    assert unknown == [], f"{service} sets variables its code never reads: {unknown}"
    OUR_SERVICES[service].model_validate(
        {k.lower(): v for k, v in env_of(compose, service).items()}
    )


@pytest.mark.parametrize("service", sorted(OUR_SERVICES))
def test_ports_agree_with_port_setting_healthcheck_and_prometheus_targets(
    compose: dict[str, Any], service: str
) -> None:
    port = int(env_of(compose, service)["PORT"])
    assert health_url(compose, service)[0] == port
    for published in compose["services"][service].get("ports", []):
        assert container_port(published) == port
    targets = orjson.loads((ROOT / "prometheus/targets-compose/targets.json").read_bytes())
    assert f"{service}:{port}" in {t for group in targets for t in group["targets"]}


def test_the_watcher_reads_what_the_demo_reads(compose: dict[str, Any]) -> None:
    env = env_of(compose, "istiowatcher")
    assert env["ACTUATOR"] == "haproxy"
    assert env["HAPROXY_RUNTIME_API"] == "tcp://haproxy:9999"
    assert env["QUERY"] == LOCAL_QUERY
    assert env["BURST_ERROR_QUERY"] == LOCAL_BURST_ERROR_QUERY
    assert env_of(compose, "frontend")["PROCESSOR_URL"] == "http://haproxy:8081"


def test_haproxy_runs_the_demos_config_whose_defaults_are_composes(
    compose: dict[str, Any],
) -> None:
    """One config for both: compose mounts the package's file, whose defaults name compose's
    services and ports (the demo sets HAPROXY_* to its own)."""
    service = compose["services"]["haproxy"]
    assert service["image"] == "haproxy:2.6"
    mounts = {v.split(":")[1]: Path(v.split(":")[0]) for v in service["volumes"]}
    config = mounts["/usr/local/etc/haproxy/haproxy.cfg"]
    assert config.read_text() == config_template()
    text = config.read_text()
    for default in (
        "${HAPROXY_BIND-:8081}",
        "${HAPROXY_METRICS_BIND-:8404}",
        "${HAPROXY_RUNTIME_BIND-ipv4@0.0.0.0:9999}",
        "${HAPROXY_PRIMARY-worker-primary:8081}",
        "${HAPROXY_BURST-worker-burst:8081}",
    ):
        assert default in text, default
    assert "haproxy:8404" in {
        t
        for group in orjson.loads((ROOT / "prometheus/targets-compose/targets.json").read_bytes())
        for t in group["targets"]
    }


@pytest.fixture(scope="module")
def local_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), {"nothing": []}).start()
    yield server
    server.stop()


def test_each_healthcheck_answers_200_on_the_real_service(
    compose: dict[str, Any],
    redis_server: RedisServer,
    local_prometheus: PrometheusServer,
    tmp_path: Path,
) -> None:
    """Each of our services, started with the file's environment (hosts pointed here)."""
    local = {"REDIS_URL": redis_server.host_port, "HOST": "127.0.0.1"}

    def file_env(service: str) -> dict[str, str]:  # the port is chosen free here
        return {k: v for k, v in env_of(compose, service).items() if k != "PORT"}

    started: list[ManagedProcess | HAProxyServer] = []
    try:
        env = {**file_env("worker-burst"), **local}
        worker, worker_url = start_worker(redis_server, tmp_path, **env)
        started.append(worker)
        _, path = health_url(compose, "worker-burst")
        assert httpx.get(worker_url + path, timeout=5).status_code == 200

        env = {**file_env("frontend"), **local}
        env.pop("PROCESSOR_URL")
        frontend, frontend_url = start_frontend(redis_server, tmp_path, worker_url, **env)
        started.append(frontend)
        _, path = health_url(compose, "frontend")
        assert httpx.get(frontend_url + path, timeout=5).status_code == 200

        workdir = tmp_path / "haproxy"
        workdir.mkdir()
        worker_address = worker_url.removeprefix("http://")
        proxy = HAProxyServer(workdir, worker_address, worker_address)
        proxy.start()
        started.append(proxy)
        # The healthcheck's own command (bash /dev/tcp), pointed at this HAProxy's exporter.
        command = compose["services"]["haproxy"]["healthcheck"]["test"]
        assert command[:3] == ["CMD", "bash", "-c"] and "/dev/tcp/127.0.0.1/8404" in command[3]
        here = command[3].replace("8404", str(proxy.ports.metrics_port))
        assert subprocess.run(["bash", "-c", here], timeout=10).returncode == 0
        broken = command[3].replace("8404", str(proxy.ports.metrics_port)).replace("/healthz", "/x")
        assert subprocess.run(["bash", "-c", broken], timeout=10).returncode != 0

        port = free_port()
        env = {
            **env_of(compose, "istiowatcher"),
            **local,
            "PORT": str(port),
            "PROMETHEUS_URL": local_prometheus.url,
            "HAPROXY_RUNTIME_API": proxy.runtime_api,
        }
        watcher = ManagedProcess("watcher", [ISTIO_BURST, "watcher"], tmp_path, env).start()
        started.append(watcher)
        _, path = health_url(compose, "istiowatcher")
        watcher.wait_http_ok(f"http://127.0.0.1:{port}{path}")
    finally:
        for proc in reversed(started):
            proc.stop()
