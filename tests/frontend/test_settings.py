"""Settings a user gets wrong are refused at start with a message that says what is wrong."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from istio_burst.frontend.assets import AssetsMissingError, check_assets
from istio_burst.frontend.pages import origin_check
from istio_burst.frontend.settings import parse_origins, parse_processor_url
from tests.support.processes import ISTIO_BURST


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
