"""A real redis-server on a free port, which tests can stop and start again on the same port."""

from __future__ import annotations

import socket
from pathlib import Path

from harness.ports import free_port
from harness.processes import ManagedProcess, require_binary


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None, password: str = "") -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.password = password  # set: clients must AUTH (requirepass)
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        argv = [
            require_binary("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            *(["--requirepass", self.password] if self.password else []),
        ]
        self._proc = ManagedProcess(f"redis-{self.port}", argv, self.workdir).start()
        self._proc.wait_until(self.answers, 10, "redis PING")
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                if self.password:
                    sock.sendall(f"AUTH {self.password}\r\n".encode())
                    if not sock.recv(16).startswith(b"+OK"):
                        return False
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
