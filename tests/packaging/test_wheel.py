"""The wheel is self-contained: installed into a fresh venv outside the repository, `istio-burst
demo` started from another directory serves the page and bursts.

The wheel is built from the working tree with the locked build backend (as the Dockerfiles do);
the venv gets the runtime lock by hash (from pip's cache once fetched), then the wheel with
`--no-index`, so nothing but the lock and the wheel can be in it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.frontend import Page
from harness.processes import ManagedProcess
from istio_burst.frontend.page.assets import VENDOR_DIR, VENDOR_FILES
from tests.demo.conftest import demo_argv, demo_ports

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "istio_burst"

pytestmark = pytest.mark.timeout(600)


def run(*argv: str | Path, cwd: Path) -> None:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=540
    )
    assert result.returncode == 0, f"{argv[:4]} failed:\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [name for name in VENDOR_FILES if not (VENDOR_DIR / name).is_file()]
    assert not missing, f"the page's assets are not built ({missing}): run ./run setup"
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "-w", out, ROOT, cwd=out)  # fmt: skip
    (built,) = out.glob("istio_burst-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """bin/ of a fresh venv (outside the repository) with the runtime lock and the wheel."""
    venv = tmp_path_factory.mktemp("venv")
    assert not venv.is_relative_to(ROOT)
    run(sys.executable, "-m", "venv", venv, cwd=venv)
    pip: list[str | Path] = [
        venv / "bin" / "python",
        "-m",
        "pip",
        "-q",
        "--disable-pip-version-check",
    ]
    run(*pip, "install", "--require-hashes", "-r", ROOT / "requirements" / "runtime.lock", cwd=venv)
    run(*pip, "install", "--no-index", wheel, cwd=venv)
    yield venv / "bin"


def test_the_wheel_carries_the_page_assets_and_the_demos_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in VENDOR_FILES:
        assert f"istio_burst/frontend/static/vendor/{asset}" in names
    for data in ("demo/prometheus.yml", "demo/haproxy.cfg", "frontend/templates/index.html"):
        if (PACKAGE / data).is_file():  # haproxy.cfg comes with the local data plane
            assert f"istio_burst/{data}" in names, data
    assert "istio_burst/demo/prometheus.yml" in names


async def test_the_installed_demo_runs_from_another_directory_and_bursts(
    installed: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ports = demo_ports()
    argv = demo_argv(elsewhere / "state", ports)
    argv[0] = str(installed / "istio-burst")
    env = {"PATH": f"{installed}:{os.environ['PATH']}", "PYTHONPATH": ""}
    # From `elsewhere`: nothing of the repository within reach.
    demo = ManagedProcess("installed-demo", argv, tmp_path, env, cwd=elsewhere).start()
    try:
        demo.wait_until(lambda: "String Hashr is running" in demo.output(), 120, "demo ready")
        async with Page(f"http://127.0.0.1:{ports['frontend']}") as page:
            await page.set_frequency(30)
            started = time.monotonic()
            await page.wait_for(
                "hashes",
                lambda d: any(h["value"].startswith("bursty-") for h in d["hashes"]),
                since=page.mark(),
                timeout=60,
            )
            print(f"installed demo: burst {time.monotonic() - started:.1f} s after 30 req/s")
            await page.set_frequency(0)
    finally:
        assert demo.stop() == 0, demo.output()
