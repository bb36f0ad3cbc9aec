"""The image locks (requirements/*.lock) are slices of requirements.lock, which the tests ran on.

Each pins exactly the version, with exactly the hashes, that requirements.lock pins, so an image
installs nothing the test suite did not; the worker and frontend lock carries no Kubernetes
client. After a change to pyproject.toml or requirements.lock, scripts/lock.sh re-slices them.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")
HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


def pins(lock: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) for every package the lock pins."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    name = ""
    for line in lock.read_text().splitlines():
        if match := PIN.match(line):
            name = re.sub(r"[-_.]+", "-", match.group(1).lower())
            found[name] = (match.group(2), frozenset())
        elif (match := HASH.search(line)) and name:
            version, hashes = found[name]
            found[name] = (version, hashes | {match.group(1)})
    return found


def requirement_name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower())


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
FULL = pins(ROOT / "requirements.lock")


@pytest.mark.parametrize("name", ["runtime", "istio", "build"])
def test_each_image_lock_pins_what_requirements_lock_pins(name: str) -> None:
    sliced = pins(ROOT / "requirements" / f"{name}.lock")
    assert sliced, f"requirements/{name}.lock pins nothing"
    for package, (version, hashes) in sliced.items():
        assert package in FULL, f"{package} is only in requirements/{name}.lock: scripts/lock.sh"
        assert FULL[package] == (version, hashes), f"{package} differs: run scripts/lock.sh"


def test_the_worker_and_frontend_lock_has_the_runtime_dependencies_and_no_kubernetes() -> None:
    runtime = pins(ROOT / "requirements" / "runtime.lock")
    istio = pins(ROOT / "requirements" / "istio.lock")
    for requirement in PROJECT["dependencies"]:
        assert requirement_name(requirement) in runtime, requirement
    assert "kubernetes" not in runtime
    assert "kubernetes" in istio and set(runtime) <= set(istio)
    tools = {"pytest", "mypy", "ruff", "playwright", "hypothesis", "hatchling"}
    assert not tools & set(runtime), "dev tools do not belong in the images"
