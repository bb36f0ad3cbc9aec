"""The weights of HAProxy's two worker servers, through its runtime API (the local data plane).

The runtime API is a line protocol: connect, send one command and a newline, read the answer until
HAProxy closes. `get weight workers/primary` answers `100 (initial 100)`; `set weight ...`
answers nothing on success and one line of text on failure ("No such server.").

The API has no compare-and-set, so a write first reads both weights again and fails with a
CONFLICT if they moved since the watcher's read (someone ran `set weight` by hand); the watcher
then reads again and decides again, as with the Istio actuator. The window left between that
re-read and the `set` is a few milliseconds on a local socket.

HAProxy weights are relative (0..256); the watcher's are percentages that sum to 100 and are
written as such, so the server weights equal the percentages on the page.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from istio_burst.core.contracts import PROXY_BACKEND, SUBSET_BURST, SUBSET_PRIMARY, Weights
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind, Snapshot

MAX_ANSWER_BYTES = 64 * 1024  # a weight is one short line; anything longer is not HAProxy
_WEIGHT = re.compile(r"^(\d+) \(initial \d+\)$")
_NOT_FOUND = ("No such backend", "No such server", "Require 'backend/server'")


@dataclass(frozen=True, slots=True)
class RuntimeAPI:
    """Where the runtime API listens: `tcp://host:port` or `unix:///path/to.sock`."""

    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.path else f"tcp://{self.host}:{self.port}"


def parse_runtime_api(value: str) -> RuntimeAPI:
    """`tcp://host:port` or `unix:///path`, or a ValueError that says what is wrong."""
    parts = urlsplit(value.strip())
    if parts.scheme == "unix":
        path = parts.netloc + parts.path
        if not path.startswith("/"):
            raise ValueError(f"{value!r}: a unix socket needs an absolute path: unix:///path")
        return RuntimeAPI(path=path)
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from exc
        if not parts.hostname or port is None or port == 0:
            raise ValueError(f"{value!r}: a TCP address needs a host and a port: tcp://host:port")
        return RuntimeAPI(host=parts.hostname, port=port)
    raise ValueError(
        f"{value!r} is not a runtime API address: use tcp://host:port or unix:///path/to.sock"
    )


class HAProxyActuator:
    name = "haproxy"

    def __init__(
        self, runtime_api: str, backend: str = PROXY_BACKEND, timeout: float = 5.0
    ) -> None:
        self.api = parse_runtime_api(runtime_api)
        self.backend = backend
        self.timeout = timeout
        self.target = f"haproxy backend {backend} ({self.api})"

    async def read(self) -> Snapshot:
        raw = await self._weights()
        primary, burst = raw
        if primary + burst == 0:
            raise ActuatorError(ActuatorErrorKind.INVALID, "both server weights are 0")
        if primary + burst == 100:
            return Snapshot(Weights(primary, burst), raw)
        share = round(100 * burst / (primary + burst))  # relative weights, e.g. 1/1 is 50/50
        return Snapshot(Weights(100 - share, share), raw, exact=False)

    async def write(self, seen: Snapshot, desired: Weights) -> None:
        now = await self._weights()
        if now != seen.token:
            raise ActuatorError(
                ActuatorErrorKind.CONFLICT,
                f"weights are {now[0]}/{now[1]}, not {seen.token} as read",
            )
        if now == (desired.primary, desired.burst):
            return  # already so: nothing to write
        # Raise the side that gains first, so no moment has both servers at weight 0.
        order = (
            [SUBSET_BURST, SUBSET_PRIMARY]
            if desired.burst > now[1]
            else [SUBSET_PRIMARY, SUBSET_BURST]
        )
        for server in order:
            answer = await self._command(
                f"set weight {self._server(server)} {getattr(desired, server)}"
            )
            if answer:
                raise _answer_error(f"set weight {self._server(server)}", answer)

    async def close(self) -> None:
        """Nothing held open: one connection per command."""

    def _server(self, name: str) -> str:
        return f"{self.backend}/{name}"

    async def _weights(self) -> tuple[int, int]:
        """The raw weights of servers primary and burst: the snapshot's token."""
        return await self._weight(SUBSET_PRIMARY), await self._weight(SUBSET_BURST)

    async def _weight(self, server: str) -> int:
        command = f"get weight {self._server(server)}"
        answer = await self._command(command)
        match = _WEIGHT.match(answer)
        if match is None:
            raise _answer_error(command, answer)
        return int(match.group(1))

    async def _command(self, command: str) -> str:
        """Send one command, return HAProxy's answer without surrounding whitespace."""
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout):
                if self.api.path:
                    reader, writer = await asyncio.open_unix_connection(self.api.path)
                else:
                    reader, writer = await asyncio.open_connection(self.api.host, self.api.port)
                writer.write(command.encode() + b"\n")
                await writer.drain()
                answer = b""
                while len(answer) <= MAX_ANSWER_BYTES and (chunk := await reader.read(4096)):
                    answer += chunk
        except TimeoutError as exc:
            raise ActuatorError(
                ActuatorErrorKind.TIMEOUT,
                f"{command}: no answer from {self.api} within {self.timeout:g} s",
            ) from exc
        except OSError as exc:
            raise ActuatorError(
                ActuatorErrorKind.UNREACHABLE,
                f"{command}: cannot reach the runtime API at {self.api}: {exc.strerror or exc}",
            ) from exc
        finally:
            if writer is not None:
                writer.close()
        return answer.decode("utf-8", "replace").strip()


def _answer_error(command: str, answer: str) -> ActuatorError:
    first = answer.splitlines()[0] if answer else "(empty answer)"
    if any(first.startswith(text) for text in _NOT_FOUND):
        return ActuatorError(ActuatorErrorKind.NOT_FOUND, f"{command}: {first}")
    if "Permission denied" in first:
        return ActuatorError(
            ActuatorErrorKind.FORBIDDEN,
            f"{command}: {first} (the stats socket needs `level admin`)",
        )
    if "Unknown command" in first:
        return ActuatorError(
            ActuatorErrorKind.SERVER_ERROR, f"{command}: not a runtime API: {first}"
        )
    return ActuatorError(ActuatorErrorKind.INVALID, f"{command}: {first}")
