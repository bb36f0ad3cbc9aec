"""Settings: the documented env names and defaults, the namespace default, refusals of nonsense,
and the Prometheus launcher's config (which the demo uses too)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.processes import ISTIO_BURST
from istio_burst.demo.prometheus import CONFIG, prepare_config, prometheus_command
from istio_burst.watcher.settings import (
    AMBIENT_QUERY,
    KUBERNETES_QUERY,
    LOCAL_QUERY,
    WatcherSettings,
    pod_namespace,
    thresholds_problem,
)

ENV_NAMES = [
    "HOST",
    "PORT",
    "PROMETHEUS_URL",
    "QUERY",
    "EMPTY_RESULT_VALUE",
    "INTERVAL",
    "MODE",
    "HIGH",
    "LOW",
    "PRIMARY_CAPACITY",
    "STEP",
    "MIN_DWELL",
    "STABILIZATION_WINDOW",
    "OUTAGE_POLICY",
    "OUTAGE_AFTER",
    "MAX_FAILURES",
    "ACTUATOR",
    "NAMESPACE",
    "VIRTUAL_SERVICE",
    "KUBE_CONTEXT",
    "DRY_RUN",
    "REDIS_URL",
    "BURST_HEALTH_URL",
    "BURST_ERROR_QUERY",
    "MAX_BURST_ERROR_RATIO",
    "BURST_BACKOFF",
    "BURST_BACKOFF_MAX",
    "HTTP_ROUTE",
    "PRIMARY_SERVICE",
    "BURST_SERVICE",
    "ACCEPTANCE_DEADLINE",
]


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    s = WatcherSettings()
    assert (s.port, s.prometheus_url, s.interval, s.mode) == (
        8090,
        "http://localhost:9090",
        1.0,
        "switch",
    )
    assert (s.high, s.low, s.empty_result_value, s.outage_policy) == (15, 10, 0, "hold")
    assert (s.actuator, s.virtual_service, s.dry_run) == ("istio", "worker-virtual-service", False)
    assert s.query == KUBERNETES_QUERY
    assert 'reporter="source"' in s.query and "[1m]" in s.query
    assert (
        "[5s]" in LOCAL_QUERY
        and 'haproxy_backend_http_requests_total{proxy="workers"}' in LOCAL_QUERY
    )


def test_gateway_api_reads_the_waypoint_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    s = WatcherSettings(actuator="gateway-api")
    assert s.query == AMBIENT_QUERY and 'reporter="waypoint"' in s.query
    assert (s.http_route, s.primary_service, s.burst_service) == (
        "worker-route",
        "worker-primary",
        "worker-burst",
    )
    assert WatcherSettings(actuator="gateway-api", query="up").query == "up"
    with pytest.raises(ValidationError):
        WatcherSettings(acceptance_deadline=0)


def test_every_documented_env_name_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    names = {name.upper() for name in WatcherSettings.model_fields}
    assert set(ENV_NAMES) <= names
    monkeypatch.setenv("EMPTY_RESULT_VALUE", "error")
    monkeypatch.setenv("MODE", "overflow")
    monkeypatch.setenv("DRY_RUN", "true")
    s = WatcherSettings()
    assert (s.empty_result_value, s.mode, s.dry_run) == ("error", "overflow", True)


def test_namespace_comes_from_the_service_account_file(tmp_path: Path) -> None:
    file = tmp_path / "namespace"
    file.write_text("hashr\n")
    assert pod_namespace(file) == "hashr"
    assert pod_namespace(tmp_path / "absent") == "default"


@pytest.mark.parametrize(
    "bad",
    [
        {"low": 20, "high": 15},
        {"mode": "sometimes"},
        {"outage_policy": "panic"},
        {"step": 0},
        {"interval": 0},
        {"empty_result_value": "zero"},
        {"redis_url": "http://x"},
    ],
)
def test_nonsense_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        WatcherSettings(**bad)  # type: ignore[arg-type]


def test_help_lists_the_settings_and_a_bad_value_exits_with_a_message() -> None:
    shown = subprocess.run(
        [ISTIO_BURST, "watcher", "--help"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())  # argparse wraps lines anywhere
    for name in ("PROMETHEUS_URL", "STABILIZATION_WINDOW", "BURST_ERROR_QUERY", "DRY_RUN"):
        assert f"[env: {name}]" in text
    refused = subprocess.run(
        [ISTIO_BURST, "watcher", "--low", "30"], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert "LOW (30) must not be above HIGH (15)" in refused.stderr


def test_prometheus_config_is_the_packaged_one_with_the_given_targets(tmp_path: Path) -> None:
    config_path = prepare_config(tmp_path, {"frontend": ["127.0.0.1:8080"], "w": ["a:1", "b:2"]})
    assert config_path.read_text() == CONFIG.read_text()
    assert "scrape_interval: 1s" in config_path.read_text()
    groups = json.loads((tmp_path / "targets" / "targets.json").read_text())
    assert groups == [
        {"targets": ["127.0.0.1:8080"], "labels": {"service": "frontend"}},
        {"targets": ["a:1", "b:2"], "labels": {"service": "w"}},
    ]
    argv = prometheus_command("/usr/bin/prometheus", "/c.yml", "/d", 9099)
    assert argv[:4] == [
        "/usr/bin/prometheus",
        "--config.file=/c.yml",
        "--storage.tsdb.path=/d",
        "--web.listen-address=127.0.0.1:9099",
    ]


def test_the_policy_is_the_settings_of_the_same_names() -> None:
    s = WatcherSettings(
        mode="overflow", high=20, low=5, max_failures=7, empty_result_value="error", step=25
    )
    p = s.policy()
    assert (p.mode, p.high, p.low, p.max_failures, p.step) == ("overflow", 20, 5, 7, 25)
    assert p.empty_value is None, "'error': an empty result is a bad reading"
    assert WatcherSettings(empty_result_value=2).policy().empty_value == 2.0


def test_the_burst_backoff_cap_must_not_be_below_the_backoff() -> None:
    with pytest.raises(
        ValidationError, match=r"BURST_BACKOFF_MAX \(20\) must not be below BURST_BACKOFF \(30\)"
    ):
        WatcherSettings(burst_backoff=30, burst_backoff_max=20)
    p = WatcherSettings(burst_backoff=30, burst_backoff_max=30).policy()
    assert (p.burst_backoff, p.burst_backoff_max) == (30, 30), "equal: a back-off that never grows"
    assert WatcherSettings().policy().burst_backoff_max == 600


def test_one_rule_for_low_and_high_equal_is_allowed() -> None:
    assert thresholds_problem(15, 15) is None and WatcherSettings(low=15, high=15).low == 15
    assert thresholds_problem(20, 15) == "LOW (20) must not be above HIGH (15)"
