from __future__ import annotations

from pathlib import Path

from harness.ports import free_port
from harness.processes import ISTIO_BURST

PORT_NAMES = (
    "frontend",
    "primary",
    "burst",
    "watcher",
    "redis",
    "prometheus",
    "proxy",
    "proxy-metrics",
    "proxy-api",
)


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


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the demo's components)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}
