"""A base image that is neither present nor pullable fails the container test, by name."""

from __future__ import annotations

import pytest

from tests.containers.compose import base_images, engine_or_skip, require_image


def test_a_missing_base_image_fails_naming_it() -> None:
    engine_or_skip()
    missing = "127.0.0.1:9/istio-burst-test/absent:0"  # a registry nobody listens on: fast
    with pytest.raises(pytest.fail.Exception, match=r"base image 127\.0\.0\.1:9/.*absent:0"):
        require_image(missing)


def test_the_base_images_are_those_of_the_dockerfiles_and_compose() -> None:
    services = {
        "redis": {"image": "redis:7-alpine"},
        "worker-burst": {"image": "istio-burst/worker:local"},
        "frontend": {"image": "istio-burst/frontend:local", "build": {}},
    }
    found = base_images({"services": services})
    assert {"python:3.11-slim", "node:20-slim", "redis:7-alpine"} <= set(found)
    assert not any(tag.startswith("istio-burst/") for tag in found)
    assert not any(tag in {"wheel", "venv", "assets"} for tag in found), "stage names"
