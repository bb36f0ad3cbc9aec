"""Istio's own binaries against the local Kubernetes API. Everything a fixture starts, it stops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.istio.binaries import istio_bin_dir
from harness.istio.istiod import UPSTREAM_ENVOY, Istiod
from harness.kube import LocalKube


@pytest.fixture(scope="session")
def istio_bin() -> Path:
    return istio_bin_dir()


@pytest.fixture(scope="session")
def mesh_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKube]:
    """A Kubernetes API of the Istio tests' own, not the shared `local_kube`: the manifests
    live in namespace `default`, and istiod's webhook, which fails closed, guards every Istio
    object in the cluster."""
    kube = LocalKube(tmp_path_factory.mktemp("mesh-kube")).start()
    yield kube
    kube.stop()


@pytest.fixture(scope="session")
def istiod(
    mesh_kube: LocalKube, istio_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Istiod]:
    """istiod watching the local API server, its validating webhook registered there, set to
    leave out what upstream Envoy cannot take (UPSTREAM_ENVOY)."""
    server = Istiod(mesh_kube, tmp_path_factory.mktemp("istiod"), istio_bin, **UPSTREAM_ENVOY)
    server.start()
    yield server
    server.stop()
