"""Settings a user gets wrong are refused at start with a message that says what is wrong."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from istio_burst.frontend.assets import AssetsMissingError, check_assets
from istio_burst.frontend.pages import origin_check
from istio_burst.frontend.settings import parse_origins, parse_processor_url
from tests.support.processes import ISTIO_BURST


def test_one_processor_url_is_the_default_target() -> None:
    assert parse_processor_url("http://worker-service") == {"default": "http://worker-service/"}


def test_named_processor_urls_are_the_subsets() -> None:
    assert parse_processor_url("primary=http://127.0.0.1:1, burst=http://127.0.0.1:2/") == {
        "primary": "http://127.0.0.1:1/",
        "burst": "http://127.0.0.1:2/",
    }


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("", "empty"),
        ("worker:8081", "http"),
        ("primary=http://a", "missing"),
        ("primary=http://a,cloud=http://b", "subset"),
        ("primary=http://a,primary=http://b", "twice"),
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


def test_same_origin_and_listed_origins_may_connect() -> None:
    check = origin_check(["https://dash.example"])
    environ = {"HTTP_HOST": "hashr.local:8080", "asgi.scope": {"scheme": "ws"}}
    assert check("http://hashr.local:8080", environ)
    assert check("https://dash.example", environ)
    assert not check("http://evil.example", environ)
    assert not check("https://hashr.local:8080", environ)
    # Behind a TLS-terminating ingress the page's origin is what the proxy forwarded.
    proxied = {**environ, "HTTP_X_FORWARDED_PROTO": "https"}
    assert check("https://hashr.local:8080", proxied)


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
