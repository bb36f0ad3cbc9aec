"""Fixtures every test area shares. Everything a fixture starts, it stops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.exporter import LoadExporter
from harness.kube import LocalKube
from harness.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session; tests must not stop it (use `own_redis`)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server for one test, which the test may stop and restart."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def load() -> Iterator[LoadExporter]:
    """A /metrics exporter whose request counter the test drives at chosen rates."""
    exporter = LoadExporter().start()
    yield exporter
    exporter.stop()


@pytest.fixture(scope="session")
def local_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKube]:
    """One real Kubernetes API (etcd + kube-apiserver, Istio and Gateway API CRDs) for the
    session; tests keep to namespaces of their own and must not stop it (use `own_kube`)."""
    kube = LocalKube(tmp_path_factory.mktemp("kube")).start()
    yield kube
    kube.stop()


@pytest.fixture
def own_kube(tmp_path: Path) -> Iterator[LocalKube]:
    """A real Kubernetes API for one test, which the test may stop and restart."""
    kube = LocalKube(tmp_path / "kube").start()
    yield kube
    kube.stop()


# The longest files first: two workers take a file at a time, and a long file collected last
# would leave one of them idle at the end.
LONGEST_FIRST = ("tests/soak/", "tests/containers/", "tests/demo/", "tests/istio/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))
