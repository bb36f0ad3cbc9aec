"""The service images leave out the demo's package: no service may need it to run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"worker": "worker", "frontend": "frontend", "watcher": "istiowatcher"}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_runs_without_the_demo_package(service: str) -> None:
    """What `istio-burst <service>` imports, its app built included, pulls in nothing of demo/."""
    probe = (
        "import sys, importlib\n"
        f"main = importlib.import_module('istio_burst.{service}.main')\n"
        "import istio_burst.cli\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('istio_burst.demo'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT, timeout=60)


@pytest.mark.parametrize("image", sorted(SERVICES.values()))
def test_each_service_image_removes_the_demo_package(image: str) -> None:
    dockerfile = (ROOT / "services" / image / "Dockerfile").read_text()
    assert "rm -r /opt/venv/lib/python3*/site-packages/istio_burst/demo" in dockerfile
