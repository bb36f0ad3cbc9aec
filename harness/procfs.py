"""What /proc says of a process the tests or benchmarks started: CPU time, memory, open files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float  # user + system time so far
    rss_mb: float
    peak_rss_mb: float


def sample(pid: int) -> ProcSample:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )

    def mb(key: str) -> float:
        return int(status[key].split()[0]) / 1024

    return ProcSample(ticks / os.sysconf("SC_CLK_TCK"), mb("VmRSS"), mb("VmHWM"))


def rss_mb(pid: int) -> float:
    return sample(pid).rss_mb


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    return sample(pid).cpu_seconds


def open_fds(pid: int) -> int:
    """File descriptors the process holds open (sockets included)."""
    return len(os.listdir(f"/proc/{pid}/fd"))
