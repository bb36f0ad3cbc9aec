"""`./run` on a machine where it cannot install: it names what is missing and how to get it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def minimal_path(tmp_path: Path, *, uid: int | None = None, with_apt: bool = False) -> str:
    """A PATH with only the basics `run` uses: no redis-server, prometheus, haproxy, chromium."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "bash", "cat", "sha256sum", "cut", "grep", "sed"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    if uid is not None:
        (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
        (bin_dir / "id").chmod(0o755)
    if with_apt:
        (bin_dir / "apt-get").write_text(
            "#!/bin/sh\necho apt-get must not be called >&2\nexit 99\n"
        )
        (bin_dir / "apt-get").chmod(0o755)
    return str(bin_dir)


def run_script(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(ROOT / "run"), *args],
        env={"PATH": path, "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_apt_it_names_what_is_missing(tmp_path: Path) -> None:
    result = run_script(minimal_path(tmp_path, uid=0), "demo")
    assert result.returncode == 1
    assert "missing: redis-server prometheus haproxy" in result.stderr
    assert "install them with your system's package manager" in result.stderr


def test_not_root_on_debian_it_says_the_apt_command(tmp_path: Path) -> None:
    result = run_script(minimal_path(tmp_path, uid=1000, with_apt=True), "test")
    assert result.returncode == 1
    assert "sudo apt-get install redis-server prometheus haproxy chromium" in result.stderr
    assert "apt-get must not be called" not in result.stderr


def test_unknown_command_is_refused() -> None:
    result = subprocess.run(
        [str(ROOT / "run"), "deploy"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "unknown command 'deploy'" in result.stderr
