from __future__ import annotations

import random
import socket
from pathlib import Path


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_consecutive_ports(count: int) -> int:
    """The first of `count` consecutive free ports, below the kernel's ephemeral range: no port
    the OS hands out (a bind to port 0, an outgoing connection) can take one of them before the
    caller binds it, as can happen to the neighbour of a `free_port()`."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    while True:
        first = random.randrange(10000, low - count)
        if all(_bindable(port) for port in range(first, first + count)):
            return first
