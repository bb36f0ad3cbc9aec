"""`istio-burst demo` refuses to start half a system: it names what is wrong and leaves nothing."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from harness.ports import wait_port_closed
from harness.processes import ManagedProcess
from tests.demo.conftest import (
    children_of,
    demo_argv,
    demo_ports,
    environment_of,
    processes_mentioning,
)


def test_port_taken_is_named_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = demo_ports(frontend=taken)
        result = subprocess.run(
            demo_argv(tmp_path / "state", ports), capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert f"port {taken} (frontend) is already in use" in result.stdout
    assert "--frontend-port" in result.stdout
    assert all(wait_port_closed(p) for name, p in ports.items() if name != "frontend")
    assert processes_mentioning(str(tmp_path)) == []


def test_missing_binary_is_named(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}
    result = subprocess.run(
        demo_argv(tmp_path / "state", demo_ports()),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1
    assert "redis-server is not installed" in result.stdout
    assert "./run demo" in result.stdout


def test_missing_haproxy_is_named(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("redis-server", "prometheus"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    result = subprocess.run(
        demo_argv(tmp_path / "state", demo_ports()),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": str(bin_dir)},
    )
    assert result.returncode == 1
    assert "haproxy is not installed" in result.stdout
    assert processes_mentioning(str(tmp_path)) == []


def test_low_threshold_must_be_below_high(tmp_path: Path) -> None:
    result = subprocess.run(
        [*demo_argv(tmp_path / "state", demo_ports()), "--low", "20", "--high", "15"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "LOW (20) must not be above HIGH (15)" in result.stdout


def test_a_component_that_dies_stops_the_demo_with_its_name(tmp_path: Path) -> None:
    ports = demo_ports()
    state_dir = tmp_path / "state"
    demo = ManagedProcess("demo", demo_argv(state_dir, ports), tmp_path).start()
    try:
        demo.wait_until(lambda: "String Hashr is running" in demo.output(), 90, "demo ready")
        burst_worker = next(
            pid
            for pid in children_of(demo.pid)
            if environment_of(pid).get("WORKER_NAME") == "worker-burst"
        )
        os.kill(burst_worker, signal.SIGKILL)
        assert demo.wait_exit(60) == 1
        output = demo.output()
        assert "worker-burst exited with code -9" in output
        assert str(state_dir / "logs" / "worker-burst.log") in output
        assert "demo stopped after an error" in output
        assert all(wait_port_closed(port) for port in ports.values())
        assert processes_mentioning(str(state_dir)) == []
    finally:
        demo.stop()
