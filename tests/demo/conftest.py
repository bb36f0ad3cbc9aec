from __future__ import annotations

from pathlib import Path

from tests.support.ports import free_port
from tests.support.processes import ISTIO_BURST

PORT_NAMES = ("frontend", "primary", "burst", "watcher", "redis", "prometheus")


def demo_ports(**given: int) -> dict[str, int]:
    return {name: given.get(name) or free_port() for name in PORT_NAMES}


def demo_argv(state_dir: Path, ports: dict[str, int]) -> list[str]:
    """`istio-burst demo` on the given ports, its logs and data in `state_dir`."""
    argv = [ISTIO_BURST, "demo", "--state-dir", str(state_dir), "--log-format", "text"]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    return argv


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (e.g. the demo's state dir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found
