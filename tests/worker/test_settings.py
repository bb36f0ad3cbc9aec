"""Worker settings: the original's `host:port` and URLs, env vars, `.env`, flags, --help, errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from harness.processes import ISTIO_BURST
from harness.redis_server import RedisServer
from istio_burst.cli import main
from istio_burst.core.cli_settings import parse_settings
from istio_burst.worker.main import Settings
from tests.worker.conftest import launch_worker

SETTING_ENV_VARS = [name.upper() for name in Settings.model_fields]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting leaks in from the caller's environment or a .env in the working directory."""
    for name in SETTING_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("given", "effective"),
    [
        ("redis-cache-service:6379", "redis://redis-cache-service:6379/0"),  # the original's form
        ("10.0.0.7:7000", "redis://10.0.0.7:7000/0"),
        ("redis-cache-service", "redis://redis-cache-service:6379/0"),
        ("  localhost:6380 ", "redis://localhost:6380/0"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("redis://:secret@cache:6379/2", "redis://:secret@cache:6379/2"),
        ("rediss://user:pw@cache.example:6380/0", "rediss://user:pw@cache.example:6380/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_redis_url_forms(given: str, effective: str) -> None:
    assert Settings(redis_url=given).redis_url == effective


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ("", "REDIS_URL is empty"),
        ("   ", "REDIS_URL is empty"),
        ("cache:99999", "invalid port"),
        ("cache:0", "invalid port"),
        ("cache:six", "invalid port"),
        (":6379", "has no host"),
        ("http://cache:6379", "scheme must be"),
    ],
)
def test_bad_redis_url_is_refused_with_the_reason(given: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Settings(redis_url=given)


def test_defaults_match_the_original() -> None:
    settings = Settings()
    assert settings.port == 8081
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.prefix == ""
    assert settings.channel == "calculation"
    assert settings.max_body_bytes == 64 * 1024
    assert settings.cluster_name == "primary"
    assert Settings(prefix="bursty-").cluster_name == "burst"
    assert Settings(prefix="bursty-", cluster="eu").cluster_name == "eu"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("REDIS_URL", "redis-cache-service:6379")
    monkeypatch.setenv("PREFIX", "bursty-")
    monkeypatch.setenv("MAX_BODY_BYTES", "1024")
    monkeypatch.setenv("PUBLISH_TIMEOUT", "0.25")
    settings = Settings()
    assert (settings.port, settings.prefix, settings.max_body_bytes) == (9001, "bursty-", 1024)
    assert settings.redis_url == "redis://redis-cache-service:6379/0"
    assert settings.publish_timeout == 0.25


def test_dotenv_file_and_env_over_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=9002\nPREFIX=bursty-\nREDIS_URL=cache:7000\n")
    settings = Settings()
    assert (settings.port, settings.prefix, settings.redis_url) == (
        9002,
        "bursty-",
        "redis://cache:7000/0",
    )
    monkeypatch.setenv("PORT", "9003")
    assert Settings().port == 9003


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9004")
    monkeypatch.setenv("PREFIX", "from-env-")
    argv = ["--port", "9005", "--redis-url", "redis://cache:6379/1"]
    settings = parse_settings(Settings, "istio-burst worker", argv)
    assert settings.port == 9005
    assert settings.redis_url == "redis://cache:6379/1"
    assert settings.prefix == "from-env-"  # no flag given: the env var still counts


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--port", "eighty"], "PORT"),
        (["--port", "70000"], "PORT"),
        (["--redis-url", "cache:99999"], "REDIS_URL"),
        (["--max-body-bytes", "10"], "MAX_BODY_BYTES"),
        (["--publish-timeout", "0"], "PUBLISH_TIMEOUT"),
        (["--log-level", "LOUD"], "LOG_LEVEL"),
    ],
)
def test_bad_flag_is_a_clear_cli_error(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["worker", *argv])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "invalid settings" in error and complaint in error, error


def test_bad_environment_value_stops_the_real_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [ISTIO_BURST, "worker"],
        env={"PATH": "/usr/bin:/bin", "REDIS_URL": "cache:notaport"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr and "invalid port" in result.stderr


def test_help_lists_every_setting_with_its_env_var(tmp_path: Path) -> None:
    result = subprocess.run(
        [ISTIO_BURST, "worker", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines anywhere
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in text
        assert f"[env: {name.upper()}]" in text, name


def test_effective_settings_are_logged_once_at_start_with_the_password_masked(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    worker = launch_worker(
        redis_server,
        tmp_path,
        LOG_FORMAT="json",
        REDIS_URL=f"redis://:hunter2@127.0.0.1:{redis_server.port}/0",
        PREFIX="bursty-",
    )
    try:
        # Redis has no password here; its `default` user takes any password redis-py sends.
        assert worker.http.post("/", json={"str": "abc"}).status_code == 200
    finally:
        worker.stop()
    lines = [json.loads(line) for line in worker.proc.output().splitlines() if line.startswith("{")]
    starts = [line for line in lines if line["msg"] == "starting worker"]
    assert len(starts) == 1
    logged = starts[0]["settings"]
    assert logged["prefix"] == "bursty-"
    assert logged["redis_url"] == f"redis://:***@127.0.0.1:{redis_server.port}/0"
    assert "hunter2" not in worker.proc.output()


def test_small_body_limit_and_names_in_messages(redis_server: RedisServer, tmp_path: Path) -> None:
    worker = launch_worker(
        redis_server, tmp_path, MAX_BODY_BYTES="100", CLUSTER="eu-burst", WORKER_NAME="pod-7"
    )
    try:
        big = worker.http.post("/", json={"str": "a" * 100})
        assert big.status_code == 413
        assert "limit is 100" in big.json()["detail"]
        small = worker.http.post("/", json={"str": "a" * 10})
        assert small.status_code == 200
        assert small.json()["cluster"] == "eu-burst"
        assert small.json()["worker"] == "pod-7"
        assert httpx.get(worker.url + "/_healthz").json() == {"status": "ok"}
    finally:
        worker.stop()
