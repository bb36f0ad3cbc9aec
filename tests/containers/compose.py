"""docker-compose.yml run for real: one compose project per test run, on free 127.0.0.1 ports.

`ComposeStack.open()` finds a usable Docker engine and compose tool (`docker compose` v2, else
Debian's `docker-compose` 1.29), checks the base images, builds our three images from the working
tree and starts the file under a project name of its own. `down()` removes the containers, the
network and any volume, and `leftovers()` lists what the project still has in the engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
OUR_IMAGES = "istio-burst/"
PUBLISHED = {
    "frontend": "FRONTEND_PORT",
    "prometheus": "PROMETHEUS_PORT",
    "istiowatcher": "WATCHER_PORT",
}


def docker(*args: str, timeout: float = 60, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


def engine_or_skip() -> None:
    """Skip unless a Docker engine answers (./run test starts dockerd when it can)."""
    if shutil.which("docker") is None:
        pytest.skip("no docker client: ./run test installs docker.io on Debian as root")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        pytest.skip(f"no usable Docker engine: {info.stderr.strip().splitlines()[-1:]}")


def compose_tool() -> list[str]:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    if probe.returncode == 0:
        return ["docker", "compose"]
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    return [tool]


def base_images(config: dict[str, Any]) -> list[str]:
    """Every image our Dockerfiles build FROM and every service image we do not build."""
    found: set[str] = set()
    for dockerfile in (ROOT / "services").glob("*/Dockerfile"):
        stages: set[str] = set()
        for line in dockerfile.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0].upper() == "FROM":
                if words[1] not in stages:
                    found.add(words[1])
                if len(words) >= 4 and words[2].upper() == "AS":
                    stages.add(words[3])
    for service in config["services"].values():
        image = service.get("image", "")
        if "build" not in service and image and not image.startswith(OUR_IMAGES):
            found.add(image)
    return sorted(found)


def require_image(tag: str) -> None:
    """Present, or pulled now; else the test fails naming the image (it is not a skip)."""
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return
    pulled = subprocess.run(["docker", "pull", tag], capture_output=True, text=True, timeout=300)
    if pulled.returncode != 0:
        why = (pulled.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.fail(
            f"base image {tag} is not present and cannot be pulled ({why}). "
            f"Pull or build it under the tag {tag}, then run the tests again.",
            pytrace=False,
        )


@dataclass
class ComposeStack:
    tool: list[str]
    project: str
    ports: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def open(cls) -> ComposeStack:
        engine_or_skip()
        project = f"ibtest{uuid.uuid4().hex[:10]}"
        stack = cls(compose_tool(), project, {name: free_port() for name in PUBLISHED})
        for tag in base_images(stack.config()):
            require_image(tag)
        return stack

    @property
    def env(self) -> dict[str, str]:
        ports = {PUBLISHED[name]: str(port) for name, port in self.ports.items()}
        return {**os.environ, **ports, "PUBLISH_ADDRESS": "127.0.0.1"}

    def compose(self, *args: str, timeout: float = 120) -> str:
        argv = [*self.tool, "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=self.env
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr.strip()[-3000:]}")
        return result.stdout

    def config(self) -> dict[str, Any]:
        resolved: dict[str, Any] = yaml.safe_load(self.compose("config"))
        return resolved

    def build(self) -> None:
        started = time.monotonic()
        self.compose("build", timeout=900)
        self.timings["build (all images)"] = time.monotonic() - started

    def up(self) -> None:
        try:
            self.compose("up", "-d", "--no-build", timeout=300)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nstate: {self.health()}\n{self.logs()}") from None

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def containers(self) -> dict[str, str]:
        """service name -> container id, for every container of the project."""
        out = docker(
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--format",
            '{{.ID}} {{.Label "com.docker.compose.service"}}',
        )
        return {line.split()[1]: line.split()[0] for line in out.splitlines() if line.strip()}

    def inspect(self, service: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(docker("inspect", self.containers()[service]))
        return data[0]

    def health(self) -> dict[str, str]:
        """service -> its health status, or its state when it has no healthcheck or is down."""
        out: dict[str, str] = {}
        for service in self.containers():
            state = self.inspect(service)["State"]
            out[service] = state.get("Health", {}).get("Status", state["Status"])
        return out

    def wait_healthy(self, timeout: float = 240) -> float:
        """Seconds until every service is healthy; raises with the laggards and their logs."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            health = self.health()
            if health and all(status == "healthy" for status in health.values()):
                return time.monotonic() - started
            time.sleep(0.5)
        raise TimeoutError(f"not healthy after {timeout} s: {self.health()}\n{self.logs()}")

    def logs(self, tail: int = 30) -> str:
        try:
            return self.compose("logs", "--no-color", "--tail", str(tail), timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return f"(no logs: {exc})"

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=180)

    def leftovers(self) -> list[str]:
        """The project's containers, networks and volumes still in the engine."""
        label = f"label=com.docker.compose.project={self.project}"
        return [
            *(f"container {c}" for c in docker("ps", "-aq", "--filter", label).split()),
            *(f"network {n}" for n in docker("network", "ls", "-q", "--filter", label).split()),
            *(f"volume {v}" for v in docker("volume", "ls", "-q", "--filter", label).split()),
        ]
