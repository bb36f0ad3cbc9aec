"""The demo's redis-server: 127.0.0.1 only, protected mode, and a password every service gets in
its REDIS_URL. The password is in a config file only the user can read, not on a command line."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import quote

import redis

REDIS_HOST = "127.0.0.1"  # never another address: the demo's Redis is for this machine only


def new_password() -> str:
    return secrets.token_urlsafe(24)


def redis_url(port: int, password: str) -> str:
    return f"redis://:{quote(password, safe='')}@{REDIS_HOST}:{port}/0"


def write_config(path: Path, port: int, password: str, data_dir: Path) -> Path:
    """A redis.conf readable by the user only; returns its path."""
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    lines = [
        f"port {port}",
        f"bind {REDIS_HOST}",
        "protected-mode yes",
        f'requirepass "{escaped}"',
        'save ""',
        "appendonly no",
        f'dir "{data_dir}"',
    ]
    return write_private(path, "\n".join(lines) + "\n")


def write_private(path: Path, text: str) -> Path:
    """`text` in a file only the user can read (it holds the password); returns its path."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as private:
        private.write(text)
    return path


def answers(url: str) -> bool:
    """True once Redis answers PING with this URL's password."""
    try:
        with redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
