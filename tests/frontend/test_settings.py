"""Settings a user gets wrong are refused at start with a message that says what is wrong."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.processes import ISTIO_BURST
from istio_burst.frontend.page.assets import AssetsMissingError, check_assets
from istio_burst.frontend.page.hosts import AllowedHosts, parse_hosts
from istio_burst.frontend.settings import parse_origins, parse_processor_url


def test_processor_url_is_one_url() -> None:
    assert parse_processor_url("http://worker-service") == "http://worker-service/"
    assert parse_processor_url(" http://127.0.0.1:8090/ ") == "http://127.0.0.1:8090/"


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("", "empty"),
        ("worker:8081", "http"),
        # The subset form of old: the frontend no longer splits, the data plane does.
        ("primary=http://a,burst=http://b", "one URL"),
        ("http://a,http://b", "one URL"),
    ],
)
def test_bad_processor_urls(value: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_processor_url(value)


def test_any_origin_is_never_allowed() -> None:
    with pytest.raises(ValueError, match=r"\*"):
        parse_origins("https://a.example,*")
    assert parse_origins(" https://a.example/ ,http://b:8080") == [
        "https://a.example",
        "http://b:8080",
    ]


def test_allowed_hosts_and_addresses_are_answered() -> None:
    hosts = AllowedHosts(parse_hosts("localhost, Hashr.Example.com,*.corp.example"))
    for host in ("localhost:8080", "hashr.example.com", "a.corp.example:443", "10.1.2.3:8080"):
        assert hosts.allows(host), host
    assert hosts.allows("[::1]:8080")
    for host in ("evil.example", "corp.example", "hashr.example.com.evil.example", "", "[:80"):
        assert not hosts.allows(host), host


def test_origins_must_name_an_allowed_host_or_the_address_asked() -> None:
    check = AllowedHosts(["hashr.local"]).origin_check(["https://dash.example"])
    environ = {"HTTP_HOST": "hashr.local:8080"}
    assert check(None, environ), "no Origin: not a browser"
    assert check("http://hashr.local:8080", environ)
    assert check("https://hashr.local", environ), "behind a TLS-terminating ingress"
    assert check("https://dash.example", environ)
    assert not check("http://evil.example", environ)
    # A rebinding page: Host and Origin both name the attacker's host.
    assert not check("http://evil.example:8080", {"HTTP_HOST": "evil.example:8080"})
    # By address: only the address the request itself was sent to.
    assert check("http://10.0.0.7:8080", {"HTTP_HOST": "10.0.0.7:8080"})
    assert not check("http://10.6.6.6", {"HTTP_HOST": "10.0.0.7:8080"})
    assert not check("null", environ)


@pytest.mark.parametrize("value", ["*", "*.*", "http://hashr.example", "hashr.example:8080"])
def test_bad_allowed_hosts(value: str) -> None:
    with pytest.raises(ValueError, match="ALLOWED_HOSTS"):
        parse_hosts(value)


def test_the_command_refuses_a_wildcard_origin_and_says_why() -> None:
    result = subprocess.run(
        [ISTIO_BURST, "frontend"],
        env={"ALLOWED_ORIGINS": "*", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "ALLOWED_ORIGINS" in result.stderr and "'*'" in result.stderr


def test_missing_assets_say_how_to_build_them(tmp_path: Path) -> None:
    with pytest.raises(AssetsMissingError, match=r"\./run setup"):
        check_assets(tmp_path)
